"""Results archives: a pack/unpack round trip makes the tasks cached elsewhere; a truncated, tampered or foreign
archive is refused naming the entry, and nothing of it is installed; verify recomputes a sample and compares.
Reading an archive never imports or calls what it names (a manifest naming subprocess.run, os.system, the module
``this`` or builtins.eval is refused, nothing runs); malformed manifests and members are one error line with exit
code 2; archive bombs are refused before they are read (peak memory measured in a subprocess)."""

from __future__ import annotations

import ast
import dataclasses
import gzip
import io
import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from engine_tasks import Total, Toy, ToySweep, runs

from pml import cli
from pml.engine import Store, archive, compute, graph, tasks
from pml.engine.store import first_difference

TESTS = Path(__file__).resolve().parents[1]  # tests/


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


# ---------------------------------------------------------------------------------------------------------------
# nothing an archive names is imported or called
# ---------------------------------------------------------------------------------------------------------------


def test_pml_tasks_lists_every_task_class_defined_under_pml():
    """PML_TASKS (what an archive may name without anything imported) is every Task subclass of pml, read from the
    source: a class whose bases include Task or a task class of its module."""
    found = set()
    for path in sorted((TESTS.parent / "pml").rglob("*.py")):
        classes = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)]
        module = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        names: set[str] = set()
        grew = True
        while grew:
            grew = False
            for node in classes:
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases}
                if node.name not in names and bases & (names | {"Task"}) and module != "pml.engine.tasks":
                    names.add(node.name)
                    grew = True
        found |= {f"{module}:{name}" for name in names if not name.startswith("_")}
    assert found == set(tasks.PML_TASKS)


def _forge(src, dst, edit_manifest=None, extra=()):
    """Copy an archive with its manifest passed through ``edit_manifest(manifest)`` and ``extra`` members added."""
    with tarfile.open(src, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    manifest = json.loads(members[0][1])
    if edit_manifest is not None:
        edit_manifest(manifest)
    members[0] = ("manifest.json", json.dumps(manifest).encode())
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in [*members, *extra]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


def _cli_refuses(args, capsys, *fragments) -> str:
    """``pml`` exits 2 with one ``pml: error:`` line naming ``fragments``; returns the line."""
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pml: error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("name, fields", [
    ("subprocess:run", lambda marker: {"args": ["touch", str(marker)]}),
    ("os:system", lambda marker: {"command": f"touch {marker}"}),
])
def test_an_archive_naming_a_callable_runs_nothing(name, fields, packed, tmp_path, build_tmp, capsys):
    path, tasks_, _ = packed
    marker = tmp_path / "marker"

    def evil(manifest):
        manifest["entries"][0].update({"class": name, "task": name.replace(":", "."), "fields": fields(marker)})

    bad = _forge(path, tmp_path / "evil.tar.gz", evil)
    for action in ("unpack", "verify"):
        _cli_refuses(["results", action, str(bad)], capsys, f"entry 0 {name.replace(':', '.')}", repr(name),
                     "not a known task class", "nothing was imported")
    assert not marker.exists()
    assert not list(build_tmp.rglob("*.json"))
    with pytest.raises(ValueError, match="not a known task class"):
        tasks.load_task(name, fields(marker))
    assert not marker.exists()


def test_an_archive_naming_a_module_imports_nothing(packed, tmp_path, build_tmp, capsys):
    path, _, _ = packed
    before = "this" in sys.modules
    bad = _forge(path, tmp_path / "this.tar.gz",
                 lambda m: m["entries"][1].update({"class": "this:s", "task": "this.s", "fields": {}}))
    _cli_refuses(["results", "unpack", str(bad)], capsys, "entry 1 this.s", "'this:s'")
    _cli_refuses(["results", "verify", str(bad)], capsys, "'this:s'")
    with pytest.raises(ValueError, match="not a known task class"):
        tasks.load_task("this:s", {})
    assert ("this" in sys.modules) == before
    assert "Beautiful is better than ugly" not in capsys.readouterr().out


def test_nested_configs_and_fields_are_checked_before_anything_is_built(packed, tmp_path, build_tmp, capsys):
    path, _, _ = packed
    cases = {
        "nested eval": ({"seed": {"__dataclass__": "builtins:eval", "fields": {"source": "1"}}},
                        ["'builtins:eval'", "not a known"]),
        "unknown field": ({"evil": 1}, ["unknown field(s) ['evil']", "valid: ['device'"]),
        "wrong type": ({"seed": "3"}, ["seed: '3' is not of type int"]),
        "bool for int": ({"n": True}, ["n: True is not of type int"]),
        "untagged object": ({"seed": {"a": 1}}, ["untagged or malformed object"]),
        "bad float tag": ({"sleep": {"__float__": "1e999"}}, ["untagged or malformed object"]),
    }
    for update, fragments in cases.values():
        bad = _forge(path, tmp_path / "bad.tar.gz", lambda m, u=update: m["entries"][0]["fields"].update(u))
        _cli_refuses(["results", "unpack", str(bad)], capsys, "entry 0 engine_tasks.Toy", *fragments)
    fields = Toy().fields_json()
    del fields["seed"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['seed'\]"):
        tasks.load_task("engine_tasks:Toy", fields)
    with pytest.raises(ValueError, match="'builtins:eval'"):
        tasks.from_json({"__dataclass__": "builtins:eval", "fields": {"source": "1"}})
    nested = Total(seeds=(1,)).fields_json()
    assert tasks.load_task("engine_tasks:Total", nested) == Total(seeds=(1,))
    assert not list(build_tmp.rglob("*.json"))


# ---------------------------------------------------------------------------------------------------------------
# malformed manifests and members: one error line, exit code 2, nothing written
# ---------------------------------------------------------------------------------------------------------------


def _entry0(update):
    return lambda m: m["entries"][0].update(update)


MALFORMED = {
    "list": (b"[]", "holds a JSON list, not an object"),
    "number": (b"3", "holds a JSON number, not an object"),
    "deep": (b"[" * 1_000_000 + b"]" * 1_000_000, "nested more than 64 levels deep"),
    "not json": (b"{'format': 1}", "manifest.json is not valid JSON"),
    "nan": (None, "NaN is not strict JSON"),
    "entries int": (lambda m: m.update(entries=3), "'entries' is a JSON number, not a list"),
    "entries dict": (lambda m: m.update(entries={}), "'entries' is a JSON object, not a list"),
    "entries null": (lambda m: m.update(entries=None), "'entries' is a JSON null, not a list"),
    "versions list": (lambda m: m.update(versions=[]), "'versions' must be an object"),
    "entry list": (lambda m: m["entries"].__setitem__(0, []), "at entry 0: a JSON list, not an object"),
    "files list": (_entry0({"files": []}), "files must be an object naming exactly"),
    "files sha": (lambda m: [s.update(sha256=1) for s in m["entries"][0]["files"].values()], "expected {\"sha256\""),
    "size str": (lambda m: [s.update(size="9") for s in m["entries"][0]["files"].values()], "expected {\"sha256\""),
    "size huge": (lambda m: [s.update(size=1 << 40) for s in m["entries"][0]["files"].values()], "more than the"),
    "task newline": (lambda m: m["entries"][0].update(task=m["entries"][0]["task"] + "\n"),
                     "task type 'engine_tasks.Toy\\n' is not a dotted Python name"),
    "key short": (_entry0({"key": "abc"}), "key 'abc' is not 64 lowercase hex digits"),
    "key upper": (lambda m: m["entries"][0].update(key=m["entries"][0]["key"].upper()), "is not 64 lowercase hex"),
    "key traversal": (_entry0({"key": "../../../etc/passwd"}), "key '../../../etc/passwd' is not 64"),
    "config list": (_entry0({"config": [1]}), "config is a JSON list, not an object"),
    "steps str": (_entry0({"steps": "x"}), "steps 'x' is not a list of strings"),
    "seconds str": (_entry0({"seconds": "1"}), "seconds '1' is not a number"),
    "extra field": (_entry0({"evil": 1}), "unknown field(s) ['evil']"),
    "class of other type": (_entry0({"class": "engine_tasks:Total", "fields": Total().fields_json()}),
                            "is not of task type 'engine_tasks.Toy'"),
    "duplicate key": (lambda m: m["entries"].append(m["entries"][0]), "its key appears twice"),
    "format 1": (lambda m: m.update(format="pml-results/1"), "pack it again with this pml"),
    "format other": (lambda m: m.update(format=["x"]), "archive format ['x'], this pml reads 'pml-results/2'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_one_error_line(case, packed, tmp_path, build_tmp, capsys):
    path, _, _ = packed
    change, fragment = MALFORMED[case]
    bad = tmp_path / "bad.tar.gz"
    if callable(change):
        _forge(path, bad, change)
    else:
        with tarfile.open(path, "r:gz") as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
        members[0] = ("manifest.json", change if change is not None else
                      members[0][1].replace(b'"seconds": ', b'"seconds": NaN, "x": ', 1))
        with tarfile.open(bad, "w:gz") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    _cli_refuses(["results", "unpack", str(bad)], capsys, fragment)
    assert not build_tmp.exists()  # not even the store's folder


def _with_member(src, dst, info: tarfile.TarInfo, data: bytes = b""):
    """Copy an archive with one member added after the manifest."""
    with tarfile.open(src, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(dst, "w:gz") as tar:
        for i, (name, content) in enumerate(members):
            plain = tarfile.TarInfo(name)
            plain.size = len(content)
            tar.addfile(plain, io.BytesIO(content))
            if i == 0:
                info.size = len(data) if info.isfile() else 0
                tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return dst


@pytest.mark.parametrize("kind, setup, fragment", [
    ("dotdot", lambda i: None, "member '../../escape.json' is not in the manifest"),
    ("absolute", lambda i: None, "member '/tmp/escape.json' is not in the manifest"),
    ("symlink", lambda i: setattr(i, "type", tarfile.SYMTYPE) or setattr(i, "linkname", "/etc/passwd"),
     "is a symbolic link, not a plain file"),
    ("hardlink", lambda i: setattr(i, "type", tarfile.LNKTYPE) or setattr(i, "linkname", "manifest.json"),
     "is a hard link, not a plain file"),
    ("device", lambda i: setattr(i, "type", tarfile.CHRTYPE), "is a character device, not a plain file"),
    ("fifo", lambda i: setattr(i, "type", tarfile.FIFOTYPE), "is a FIFO, not a plain file"),
    ("directory", lambda i: setattr(i, "type", tarfile.DIRTYPE), "is a directory, not a plain file"),
])
def test_members_outside_the_manifest_or_not_plain_files_are_refused(kind, setup, fragment, packed, tmp_path,
                                                                      build_tmp, capsys):
    path, tasks_, _ = packed
    name = {"dotdot": "../../escape.json", "absolute": "/tmp/escape.json"}.get(
        kind, f"entries/engine_tasks.Toy/{tasks_[0].key()}.npz")
    info = tarfile.TarInfo(name)
    setup(info)
    bad = _with_member(path, tmp_path / "bad.tar.gz", info, b"{}" if info.isfile() else b"")
    _cli_refuses(["results", "unpack", str(bad)], capsys, fragment)
    assert not build_tmp.exists() and not (tmp_path.parent / "escape.json").exists()


def test_a_member_whose_size_differs_from_the_manifest_is_refused_before_it_is_read(packed, tmp_path, capsys,
                                                                                    build_tmp):
    path, tasks_, _ = packed
    key = tasks_[2].key()
    bad = _forge(path, tmp_path / "grown.tar.gz",
                 lambda m: [e["files"][f"entries/engine_tasks.Toy/{key}.npz"].update(size=7)
                            for e in m["entries"] if e["key"] == key])
    _cli_refuses(["results", "unpack", str(bad)], capsys, f"{key[:12]}", "bytes, the manifest says 7")
    laptop = Store(tmp_path / "laptop")
    Toy(seed=9)  # the store below holds one entry already: a refused archive leaves it as it was
    compute([Toy(seed=9)], store=laptop, client=False)
    before = sorted(p.relative_to(laptop.root) for p in laptop.root.rglob("*"))
    with pytest.raises(archive.ArchiveError):
        archive.unpack(bad, laptop)
    assert sorted(p.relative_to(laptop.root) for p in laptop.root.rglob("*")) == before
    archive.unpack(path, laptop)
    assert not list(laptop.root.glob(".unpack-*"))  # the staging folder is gone after success too


def test_json_bounds_are_checked_before_parsing():
    with pytest.raises(ValueError, match="more than 1000000 JSON values"):
        archive._parse_json(b"[" + b"[]," * 1_000_001 + b"0]", "x")
    with pytest.raises(ValueError, match="more than 64 levels"):
        archive._parse_json(b"[" * 65 + b"]" * 65, "x")
    with pytest.raises(ValueError, match="not terminated"):
        archive._parse_json(b'["' + b'\\"' * 1000, "x")
    assert archive._parse_json(b'{"a": ["b\\"", 1, {"c": [[]]}]}', "x") == {"a": ['b"', 1, {"c": [[]]}]}
    assert archive._parse_json(b"[" * 64 + b"]" * 64, "x") is not None


# ---------------------------------------------------------------------------------------------------------------
# archive bombs: refused before they are read, peak memory measured in a subprocess
# ---------------------------------------------------------------------------------------------------------------


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _zeros_gz(n_mib: int) -> bytes:
    """``n_mib`` MiB of zeros as concatenated gzip members (one compressed MiB, repeated): built instantly."""
    return gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0) * n_mib


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _bomb(packed_path, dst, name: str, n_mib: int, declare=None) -> Path:
    """The packed archive's manifest (through ``declare``) then one member ``name`` of ``n_mib`` MiB of zeros."""
    with tarfile.open(packed_path, "r:gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    if declare is not None:
        declare(manifest)
    data = json.dumps(manifest).encode()
    head = _header("manifest.json", len(data)) + data + bytes(-len(data) % 512)
    dst.write_bytes(_gz(head) + _gz(_header(name, n_mib << 20)) + _zeros_gz(n_mib) + _gz(bytes(1024)))
    return dst


_UNPACK = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import engine_tasks  # the archive's task classes, as a user's session would have imported them
    from pml import cli, paths
    paths.build_dir = lambda: Path({build!r})
    sys.exit(cli.main(["results", "unpack", {path!r}]))
""")
# Linux keeps a process's peak resident size across fork and exec, so a child of this (large) test process would
# report at least this process's size: a small launcher runs the unpack and reports its child's peak.
_LAUNCH = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True, timeout=120)
    sys.stderr.write(done.stderr)
    print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
""")


def _peak_mb(path, build) -> tuple[int, int, str]:
    """(exit code, peak resident MB, stderr) of `pml results unpack path` in a fresh interpreter."""
    code = _UNPACK.format(tests=str(TESTS), build=str(build), path=str(path))
    done = subprocess.run([sys.executable, "-c", _LAUNCH, code], capture_output=True, text=True, timeout=150)
    rc, peak = done.stdout.split()
    return int(rc), int(peak), done.stderr


def test_archive_bombs_are_refused_within_bounded_memory(packed, tmp_path):
    path, tasks_, _ = packed
    npz = f"entries/engine_tasks.Toy/{tasks_[0].key()}.npz"
    cases = {
        # a member of 2 GiB that is not in the manifest: refused at its header, its data never read
        "2 GiB member not in the manifest": (_bomb(path, tmp_path / "a.tar.gz", "entries/x.npz", 2048),
                                             "is not in the manifest"),
        # a 1 GiB manifest (1 MB of gzip): refused by its declared size
        "1 GiB manifest": (tmp_path / "b.tar.gz", "more than the 33554432 a manifest may have"),
        # a member the manifest declares (256 MiB, wrong hash): streamed through the hash, never held whole
        "256 MiB declared member": (_bomb(path, tmp_path / "c.tar.gz", npz, 256, lambda m: m["entries"][0]["files"][
            npz].update(size=256 << 20)), "does not match its SHA-256"),
    }
    (tmp_path / "b.tar.gz").write_bytes(_gz(_header("manifest.json", 1 << 30)) + _zeros_gz(1024) + _gz(bytes(1024)))
    peaks = {}
    for label, (bomb, fragment) in cases.items():
        assert bomb.stat().st_size < 3e6
        rc, peak, err = _peak_mb(bomb, tmp_path / "build")
        assert rc == 2 and fragment in err and err.count("\n") == 1, err
        assert not (tmp_path / "build").exists()
        peaks[label] = peak
    print("peak resident memory of `pml results unpack` (MB):", peaks)
    assert all(peak < 200 for peak in peaks.values()), peaks


def _pax_member(records: bytes, size: int | None = None) -> bytes:
    """A raw pax extended header (type x) holding ``records``, declared ``size`` bytes long."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(records) if size is None else size
    return info.tobuf(format=tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)


@pytest.mark.parametrize("records, size, fragment", [
    (b"", 1 << 30, "a pax header of 1073741824 bytes"),  # refused by its declared size, never read
    (b"abc path=x\n", None, "malformed pax record"),
    (b"30 path=x\n", None, "malformed pax record"),
    (b"12 pathx\n", None, "malformed pax record"),
    (b"14 size=-5000\n", None, "pax size '-5000'"),
])
def test_malformed_or_oversized_pax_headers_are_refused(records, size, fragment, packed, tmp_path, build_tmp,
                                                         capsys):
    path, _, _ = packed
    with tarfile.open(path, "r:gz") as tar:
        manifest = tar.extractfile("manifest.json").read()
    raw = _header("manifest.json", len(manifest)) + manifest + bytes(-len(manifest) % 512)
    bad = tmp_path / "pax.tar.gz"
    bad.write_bytes(_gz(raw + _pax_member(records, size) + _header("entries/x", 0) + bytes(1024)))
    _cli_refuses(["results", "unpack", str(bad)], capsys, fragment)
    assert not build_tmp.exists()


def test_long_task_types_travel_in_pax_headers(tmp_path):
    """pack writes names over 100 characters (a long task type) in pax headers; unpack reads them back."""
    cls = type("A" * 60 + "Task", (Toy,), {"__module__": Toy.__module__, "__qualname__": "A" * 60 + "Task"})
    cls = dataclasses.dataclass(frozen=True)(cls)
    task = cls(seed=5)
    origin = Store(tmp_path / "origin")
    compute([task], store=origin, client=False)
    path = tmp_path / "long.tar.gz"
    archive.pack({"01/long": [task]}, path, profile="ci", store=origin)
    assert any(len(m.name) > 100 for m in tarfile.open(path))
    laptop = Store(tmp_path / "laptop")
    assert archive.unpack(path, laptop).added == 1
    np.testing.assert_array_equal(laptop.get(task)["ax"], origin.get(task)["ax"])
