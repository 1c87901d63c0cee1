"""Profiles, chapter parameters and their validation (no chapter is executed here)."""

import pytest

from pml import paths
from pml.book import runner


def test_toc_lists_every_chapter_and_root_is_index():
    files = runner.toc_files()
    assert files[0] == "book/index"
    listed = {f.split("/", 1)[1] for f in files}
    on_disk = {p.relative_to(paths.book_dir()).with_suffix("").as_posix() for p in paths.book_dir().rglob("*.md")
               if "_params" not in p.parts}
    assert on_disk == listed, "every book/*.md must be in _toc.yml and vice versa"
    assert runner.chapters()[-1] == "99_reproduction_report"


def test_every_profile_file_is_valid():
    for profile in runner.PROFILES:
        runner.load_profile(profile)


def test_smoke_profile_covers_every_chapter_with_size_knobs():
    smoke = runner.load_profile("smoke")
    for stem in runner.chapters():
        defaults = runner.chapter_parameters(stem)
        if set(defaults) - {"profile"} and stem != "99_reproduction_report":
            assert stem in smoke, f"chapter {stem} has no smoke overrides"


def test_unknown_profile_chapter_and_parameter():
    with pytest.raises(runner.BookError, match="unknown profile 'fast'; valid: smoke, ci, paper"):
        runner.check_profile("fast")
    with pytest.raises(runner.BookError, match="unknown chapter 'nope'; valid: 01_introduction"):
        runner.check_chapter("nope")
    with pytest.raises(runner.BookError, match="unknown parameter 'n_sedes'.*valid: seed, floor_equation"):
        runner.resolve_parameters("01_introduction", "smoke", {"n_sedes": 3})


def test_wrong_types_are_rejected_and_ints_widen_to_float():
    with pytest.raises(runner.BookError, match="'n_seeds'.*must be of type int.*got str"):
        runner.resolve_parameters("01_introduction", "smoke", {"n_seeds": "many"})
    with pytest.raises(runner.BookError, match="'n_train'.*must be of type list"):
        runner.resolve_parameters("01_introduction", "smoke", {"n_train": 5})
    with pytest.raises(runner.BookError, match="'n_train'"):
        runner.resolve_parameters("01_introduction", "smoke", {"n_train": [1.5]})
    assert runner._type_ok(1.0, 2) and not runner._type_ok(1, True) and not runner._type_ok(True, 1)


def test_resolution_order_profile_then_user_then_profile_name():
    params = runner.resolve_parameters("01_introduction", "smoke", {"n_seeds": 7})
    assert params["n_seeds"] == 7 and params["profile"] == "smoke"
    assert params["n_floor_points"] == runner.load_profile("smoke")["01_introduction"]["n_floor_points"]


def test_bad_profile_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "params_dir", lambda: tmp_path)
    (tmp_path / "smoke.yaml").write_text("01_introduction: {n_seeds: 2.5}\n")
    with pytest.raises(runner.BookError, match="smoke.yaml: parameter 'n_seeds'"):
        runner.load_profile("smoke")
    (tmp_path / "smoke.yaml").write_text("02_missing: {}\n")
    with pytest.raises(runner.BookError, match="smoke.yaml: unknown chapter '02_missing'"):
        runner.load_profile("smoke")


def test_parse_assignment():
    assert runner.parse_assignment("n_train=[1, 2]") == ("n_train", [1, 2])
    assert runner.parse_assignment("lr=1e-3") == ("lr", 1e-3)
    assert runner.parse_assignment("normalize=true") == ("normalize", True)
    assert runner.parse_assignment("equation=I.8.14") == ("equation", "I.8.14")
    with pytest.raises(runner.BookError, match="name=value"):
        runner.parse_assignment("oops")
