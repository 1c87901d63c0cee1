"""Results archives: a pack/unpack round trip makes the tasks cached elsewhere; a truncated, tampered or foreign
archive is refused naming the entry, and nothing of it is installed; verify recomputes a sample and compares."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from engine_tasks import Total, Toy, ToySweep, runs

from pml.engine import Store, archive, compute, graph
from pml.engine.store import first_difference


def _tasks(log=""):
    return graph([*ToySweep(seeds=(0, 1, 2, 3), log=log).tasks(), Total(seeds=(0, 1), log=log)])


@pytest.fixture
def packed(tmp_path):
    store = Store(tmp_path / "origin")
    tasks = _tasks()
    results = compute(tasks, store=store, client=False)
    path = tmp_path / "results.tar.gz"
    report = archive.pack({"01_toy/toys": tasks[:-1], "01_toy/total": [tasks[-1]]}, path, profile="ci", store=store)
    assert report.entries == len(tasks) == 5 and not report.missing
    return path, tasks, results


def _rewrite(src, dst, edit):
    """Copy an archive member by member through ``edit(name, data) -> [(name, data), ...]``."""
    with tarfile.open(src, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in members:
            for new_name, new_data in edit(name, data):
                info = tarfile.TarInfo(new_name)
                info.size = len(new_data)
                tar.addfile(info, io.BytesIO(new_data))


def test_round_trip_then_nothing_the_archive_holds_is_computed(packed, tmp_path):
    path, tasks, results = packed
    laptop = Store(tmp_path / "laptop")
    report = archive.unpack(path, laptop)
    assert (report.added, report.present, report.conflicts, report.profile) == (5, 0, [], "ci")
    log = str(tmp_path / "log")
    again = compute(_tasks(log=log), store=laptop, client=False)
    assert runs(log) == []  # every task served from the unpacked entries
    for a, b in zip(again, results):
        assert first_difference(a, b) is None
    assert archive.unpack(path, laptop).present == 5  # idempotent
    manifest = json.loads(tarfile.open(path).extractfile("manifest.json").read())
    entry = manifest["entries"][0]
    assert {"task", "key", "config", "files", "steps"} <= set(entry) and manifest["versions"]["numpy"]
    assert manifest["format"] == "pml-results/2" and manifest["pml_version"]
    for name, spec in entry["files"].items():
        assert len(spec["sha256"]) == 64 and spec["size"] == tarfile.open(path).getmember(name).size


def test_a_stored_entry_with_another_result_is_never_overwritten(packed, tmp_path):
    path, tasks, _ = packed
    laptop = Store(tmp_path / "laptop")
    mine = Toy(seed=2)
    laptop.put(mine, {"ax": np.zeros(3)}, seconds=0.0)
    corrupt = Toy(seed=3)
    laptop.put(corrupt, {"ax": np.ones(3)}, seconds=0.0)
    laptop.paths(corrupt)[0].write_bytes(b"garbage")
    report = archive.unpack(path, laptop)
    assert len(report.conflicts) == 1 and mine.key()[:12] in report.conflicts[0] and "seed=2" in report.conflicts[0]
    assert report.replaced == 1 and report.added == 3
    np.testing.assert_array_equal(laptop.get(mine)["ax"], np.zeros(3))  # kept
    assert laptop.get(corrupt)["ax"].shape == (64,)  # the unreadable one was replaced


def _refused(path, laptop, *fragments):
    with pytest.raises(archive.ArchiveError) as info:
        archive.unpack(path, laptop)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert not list(laptop.root.rglob("*.json"))  # nothing installed
    return str(info.value)


def test_a_tampered_archive_is_refused_naming_the_entry(packed, tmp_path):
    path, tasks, _ = packed
    laptop = Store(tmp_path / "laptop")
    target = tasks[1]
    suffix = f"{target.key()}.json"

    def change_a_digit(name, data):
        if name.endswith(suffix):
            text = data.decode()
            i = text.index('"seconds": ') + len('"seconds": ')
            data = (text[:i] + ("1" if text[i] != "1" else "2") + text[i + 1:]).encode()
        return [(name, data)]

    bad = tmp_path / "tampered.tar.gz"
    _rewrite(path, bad, change_a_digit)
    _refused(bad, laptop, target.key()[:12], f"seed={target.seed}", "SHA-256")

    extra = tmp_path / "extra.tar.gz"
    _rewrite(path, extra, lambda n, d: [(n, d)] + ([("entries/evil.json", b"{}")] if n == "manifest.json" else []))
    _refused(extra, laptop, "evil.json", "not in the manifest")

    flipped = bytearray(path.read_bytes())
    flipped[len(flipped) // 2] ^= 0x10
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(flipped))
    _refused(tmp_path / "flipped.tar.gz", laptop, "refusing")


def test_a_truncated_archive_is_refused(packed, tmp_path):
    path, tasks, _ = packed
    laptop = Store(tmp_path / "laptop")
    data = path.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: int(len(data) * 0.7)])
    _refused(tmp_path / "cut.tar.gz", laptop, "truncated or corrupt")
    last = tasks[-1].key()
    short = tmp_path / "short.tar.gz"
    _rewrite(path, short, lambda n, d: [] if last in n else [(n, d)])  # a valid tar that lacks an entry
    _refused(short, laptop, "truncated", last[:12])


def test_an_archive_from_other_library_versions_is_refused(packed, tmp_path):
    path, _, _ = packed

    def other_numpy(name, data):
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["versions"]["numpy"] = "1.0.0"
            data = json.dumps(manifest).encode()
        return [(name, data)]

    foreign = tmp_path / "foreign.tar.gz"
    _rewrite(path, foreign, other_numpy)
    _refused(foreign, Store(tmp_path / "laptop"), "numpy 1.0.0", "entry")


def test_verify_recomputes_a_sample_and_finds_a_wrong_result(tmp_path):
    store = Store(tmp_path / "origin")
    good = ToySweep(seeds=(0, 1, 2)).tasks()
    compute(good, store=store, client=False)
    wrong = Toy(seed=7)
    right = compute([wrong], store=Store(tmp_path / "scratch"), client=False)[0]
    store.put(wrong, {**right, "norm": right["norm"] * (1 + 1e-15)}, seconds=0.1)  # consistent hashes, wrong number
    gpu = Toy(seed=8, device="cuda")
    close = compute([Toy(seed=8)], store=Store(tmp_path / "scratch"), client=False)[0]
    store.put(gpu, {**close, "ax": close["ax"] * (1 + 1e-9)}, seconds=0.1, device="cuda")
    path = tmp_path / "a.tar.gz"
    archive.pack({"01_toy/all": [*good, wrong, gpu]}, path, profile="ci", store=store)
    lines = []
    verdicts = {v.label.split(",")[0]: v for v in archive.verify(path, sample=10, log=lines.append)}
    assert len(verdicts) == 5 and len(lines) == 5
    assert verdicts["Toy(seed=7"].verdict == "MISMATCH" and "['norm']" in verdicts["Toy(seed=7"].detail
    assert verdicts["Toy(seed=8"].verdict == "within tolerance" and "rtol" in verdicts["Toy(seed=8"].detail
    assert all(verdicts[f"Toy(seed={s}"].verdict == "identical" for s in (0, 1, 2))
    skipped = archive.verify(path, sample=2, time_limit=0.0, log=lambda s: None)
    assert [v.verdict for v in skipped] == ["skipped", "skipped"]
    assert len(archive.verify(path, sample=2, seed=1, log=lambda s: None)) == 2
