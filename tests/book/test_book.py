"""Profiles, chapter parameters and their validation (no chapter is executed here)."""

import pytest

from pml import paths
from pml.book import params


def test_toc_lists_every_chapter_and_root_is_index():
    files = params.toc_files()
    assert files[0] == "book/index"
    listed = {f.split("/", 1)[1] for f in files}
    on_disk = {p.relative_to(paths.book_dir()).with_suffix("").as_posix() for p in paths.book_dir().rglob("*.md")
               if "_params" not in p.parts}
    assert on_disk == listed, "every book/*.md must be in _toc.yml and vice versa"
    assert params.chapters()[-1] == "99_reproduction_report"


def test_every_profile_file_is_valid():
    for profile in params.PROFILES:
        params.load_profile(profile)


def test_smoke_profile_covers_every_chapter_with_size_knobs():
    smoke = params.load_profile("smoke")
    for stem in params.chapters():
        defaults = params.chapter_parameters(stem)
        if set(defaults) - {"profile"} and stem != "99_reproduction_report":
            assert stem in smoke, f"chapter {stem} has no smoke overrides"


def test_unknown_profile_chapter_and_parameter():
    with pytest.raises(params.BookError, match="unknown profile 'fast'; valid: smoke, ci, paper"):
        params.check_profile("fast")
    with pytest.raises(params.BookError, match="unknown chapter 'nope'; valid: 01_introduction"):
        params.check_chapter("nope")
    with pytest.raises(params.BookError, match="unknown parameter 'n_sedes'.*valid: seed, floor_equation"):
        params.ChapterParams.resolve("01_introduction", "smoke", {"n_sedes": 3}).injected()


def test_wrong_types_are_rejected_and_ints_widen_to_float():
    with pytest.raises(params.BookError, match="'n_seeds'.*must be of type int.*got str"):
        params.ChapterParams.resolve("01_introduction", "smoke", {"n_seeds": "many"}).injected()
    with pytest.raises(params.BookError, match="'n_train'.*must be of type list"):
        params.ChapterParams.resolve("01_introduction", "smoke", {"n_train": 5}).injected()
    with pytest.raises(params.BookError, match="'n_train'"):
        params.ChapterParams.resolve("01_introduction", "smoke", {"n_train": [1.5]}).injected()
    assert params._type_ok(1.0, 2) and not params._type_ok(1, True) and not params._type_ok(True, 1)


def test_resolution_order_profile_then_user_then_profile_name():
    injected = params.ChapterParams.resolve("01_introduction", "smoke", {"n_seeds": 7}).injected()
    assert injected["n_seeds"] == 7 and injected["profile"] == "smoke"
    assert injected["n_floor_points"] == params.load_profile("smoke")["01_introduction"]["n_floor_points"]


def test_bad_profile_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "params_dir", lambda: tmp_path)
    (tmp_path / "smoke.yaml").write_text("01_introduction: {n_seeds: 2.5}\n")
    with pytest.raises(params.BookError, match="smoke.yaml: parameter 'n_seeds'"):
        params.load_profile("smoke")
    (tmp_path / "smoke.yaml").write_text("02_missing: {}\n")
    with pytest.raises(params.BookError, match="smoke.yaml: unknown chapter '02_missing'"):
        params.load_profile("smoke")


def test_parse_assignment():
    assert params.parse_assignment("n_train=[1, 2]") == ("n_train", [1, 2])
    assert params.parse_assignment("lr=1e-3") == ("lr", 1e-3)
    assert params.parse_assignment("normalize=true") == ("normalize", True)
    assert params.parse_assignment("equation=I.8.14") == ("equation", "I.8.14")
    with pytest.raises(params.BookError, match="name=value"):
        params.parse_assignment("oops")
