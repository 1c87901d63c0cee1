"""Fuzzing `pml results unpack` (and `verify`) with archives mutated from a real one by a seeded generator.

A small real archive (four toy tasks and one that depends on two of them) is packed once. Each case changes it:
its members (dropped, duplicated, reordered, renamed, truncated, bytes flipped, an extra one added, a link or a
device instead of a file, a header that lies about the size), its manifest (fields of other types, other sizes,
hashes, names, keys, deep nesting, class names pointing at os, subprocess, builtins or the module ``this`` with a
command that would create a marker file), the tar's bytes (headers and data overwritten, the tar cut) or the
compressed bytes (cut, flipped, garbage appended). Most cases apply one change whose verdict is known (refused, or
still valid: members reordered, a step renamed, an extra top-level note); the rest apply two or three. The
property: ``pml`` never raises; it exits 2 with exactly one ``pml: error: ...`` line and leaves the store as it
was, or exits 0 having installed only files byte-identical to the real archive's; the marker file is never created
and ``this`` is never imported.
"""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import random
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from engine_tasks import Total, Toy, ToySweep

from pml import cli, paths
from pml.engine import Store, archive, compute, graph

N_CASES = 300
EVIL_CLASSES = ["os:system", "subprocess:run", "subprocess:Popen", "builtins:eval", "builtins:exec",
                "importlib:import_module", "this:s", "shutil:rmtree", "pml.experiments.beyond:BenchTask",
                "engine_tasks:_record", "pml.engine.tasks:Task", "engine_tasks:ToySweep"]


@dataclasses.dataclass
class Member:
    name: str
    data: bytes
    kind: bytes = tarfile.REGTYPE
    lie: int = 0  # added to the size the header states


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real archive's members and manifest, the original store's files, and a store with one other entry."""
    root = tmp_path_factory.mktemp("real")
    origin = Store(root / "origin")
    tasks = graph([*ToySweep(seeds=(0, 1, 2, 3)).tasks(), Total(seeds=(0, 1))])
    compute(tasks, store=origin, client=False)
    path = root / "real.tar.gz"
    archive.pack({"01_toy/toys": tasks[:-1], "01_toy/total": tasks[-1:]}, path, profile="ci", store=origin)
    with tarfile.open(path, "r:gz") as tar:
        members = [Member(m.name, tar.extractfile(m).read()) for m in tar]
    template = root / "template" / "_build"
    compute([Toy(seed=99)], store=Store(template / "results" / "tasks"), client=False)
    return members, json.loads(members[0].data), _files(origin.root), template


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _archive(members: list[Member], manifest, damage=None) -> bytes:
    """A gzip-compressed pax tar of ``members`` (the first one's data replaced by ``manifest`` when given), the
    uncompressed tar passed through ``damage`` first."""
    out = bytearray()
    for i, m in enumerate(members):
        data = m.data
        if i == 0 and m.name == "manifest.json" and manifest is not None:
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        info = tarfile.TarInfo(m.name)
        info.type = m.kind
        info.size = max(len(data) + m.lie, 0)
        if m.kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = "/etc/passwd"
        out += info.tobuf(format=tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)
    out += bytes(1024)
    out += bytes(-len(out) % 10240)
    return gzip.compress(bytes(out) if damage is None else damage(bytes(out)), mtime=0)


# ---------------------------------------------------------------------------------------------------------------
# mutations: each returns the verdict it guarantees ("error" or "ok"), or "either"
# ---------------------------------------------------------------------------------------------------------------


def _entry(rng, manifest):
    return rng.choice(manifest["entries"])


def _odd_value(rng):
    return rng.choice([None, True, 0, -1, 2**64, 1.5, float("1e308"), "", "x\n", [], [1, "a"], {}, {"a": []},
                       "../../etc", "\u00e9", {"__tuple__": 1}, {"__dataclass__": "os:system", "fields": {}}])


def m_drop(rng, members, manifest, marker):
    del members[rng.randrange(len(members))]
    return "error"


def m_duplicate(rng, members, manifest, marker):
    i = rng.randrange(len(members))
    members.insert(rng.randrange(len(members) + 1), dataclasses.replace(members[i]))
    return "error"


def m_reorder(rng, members, manifest, marker):
    entries = members[1:]
    rng.shuffle(entries)
    members[1:] = entries
    return "ok"


def m_manifest_not_first(rng, members, manifest, marker):
    members.insert(rng.randrange(2, len(members) + 1), members.pop(0))
    return "error"


def m_rename(rng, members, manifest, marker):
    m = rng.choice(members)
    m.name = rng.choice([n for n in ["../../escape.json", "/tmp/escape.json", m.name + "\n", m.name.upper(), "entries/x.npz",
                         m.name.replace("entries/", "entries/../"), "manifest.json", m.name + "/", "", "a" * 300]
                         if n != m.name])
    return "error"


def m_truncate_member(rng, members, manifest, marker):
    m = rng.choice(members[1:])  # (the manifest's bytes: m_manifest_bytes)
    m.data = m.data[: rng.randrange(len(m.data))]
    return "error"


def m_flip_member(rng, members, manifest, marker):
    i = rng.randrange(1, len(members))  # an entry's file: its hash no longer matches
    data = bytearray(members[i].data)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    members[i].data = bytes(data)
    return "error"


def m_extra(rng, members, manifest, marker):
    members.insert(rng.randrange(1, len(members) + 1),
                   Member(rng.choice(["entries/evil.json", "evil", "entries/engine_tasks.Toy/" + "0" * 64 + ".npz"]),
                          rng.choice([b"", b"{}", bytes(5000)])))
    return "error"


def m_kind(rng, members, manifest, marker):
    m = rng.choice(members[1:])
    m.kind = rng.choice([tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE,
                         tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE])
    if m.kind != tarfile.CONTTYPE and m.kind != tarfile.GNUTYPE_SPARSE:
        m.data = b""
    return "error"


def m_header_size_lie(rng, members, manifest, marker):
    m = rng.choice(members)
    m.lie = rng.choice([rng.randint(1, 2000), -rng.randint(1, min(600, len(m.data))), 8**11 - 1 - len(m.data)])
    return "error"


def m_field_type(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    name = rng.choice(["task", "class", "key", "config", "fields", "device", "seconds", "files"])
    value = _odd_value(rng)
    if value == entry[name]:
        value = [value]
    entry[name] = value
    return "error"


def m_field_drop_or_add(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    if rng.random() < 0.5:
        del entry[rng.choice(sorted(entry))]
    else:
        entry[rng.choice(["evil", "__class__", "source"])] = _odd_value(rng)
    return "error"


def m_top_level(rng, members, manifest, marker):
    name = rng.choice(["format", "versions", "entries", "profile", "created", "pml_version"])
    value = _odd_value(rng)
    if name in ("profile", "created", "pml_version") and (value is None or isinstance(value, str)):
        value = 3
    manifest[name] = value
    return "error"


def m_top_level_note(rng, members, manifest, marker):
    manifest[rng.choice(["note", "machine", "pml_commit"])] = rng.choice(["a cluster", "", None, [1, 2]])
    return "ok"


def m_steps(rng, members, manifest, marker):
    _entry(rng, manifest)["steps"] = rng.choice([[], ["01_toy/other"], ["a", "b"]])
    return "ok"


def m_evil_class(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    name = rng.choice(EVIL_CLASSES)
    entry["class"] = name
    if rng.random() < 0.8:
        entry["task"] = name.replace(":", ".")
    entry["fields"] = rng.choice([{"args": ["touch", str(marker)]}, {"command": f"touch {marker}"},
                                  {"source": f"open({str(marker)!r}, 'w')"}, {}, entry["fields"]])
    return "error"


def m_evil_nested(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    field_name = rng.choice(sorted(entry["fields"]))
    entry["fields"][field_name] = {"__dataclass__": rng.choice(EVIL_CLASSES),
                                   "fields": rng.choice([{"command": f"touch {marker}"}, {}])}
    return "error"


def m_field_value(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    field_name = rng.choice(sorted(entry["fields"]))
    entry["fields"][field_name] = rng.choice([_odd_value(rng), 12345, "seed", [entry["fields"][field_name]]])
    return "error"


def m_config(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    entry["config"] = {**entry["config"], rng.choice(sorted(entry["config"])): 987654}
    return "error"


def m_sizes(rng, members, manifest, marker):
    spec = rng.choice(list(_entry(rng, manifest)["files"].values()))
    spec["size"] = rng.choice([spec["size"] + 1, spec["size"] - 1, 0, -1, 2**40, 1.0 * spec["size"],
                               str(spec["size"]), True, None])
    return "error"


def m_sha(rng, members, manifest, marker):
    spec = rng.choice(list(_entry(rng, manifest)["files"].values()))
    spec["sha256"] = rng.choice([v for v in ["0" * 64, spec["sha256"].upper(), spec["sha256"][:-1], 5, None]
                                 if v != spec["sha256"]])
    return "error"


def m_file_names(rng, members, manifest, marker):
    files = _entry(rng, manifest)["files"]
    name = rng.choice(sorted(files))
    other = rng.choice(["../../x.json", name + "x", "/etc/passwd", name.replace(".npz", ".json"),
                        name.replace(".json", ".npz")])
    files[other if other != name else name + "\n"] = files.pop(name)
    return "error"


def m_key(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    entry["key"] = rng.choice([k for k in ["0" * 64, entry["key"][:-1], entry["key"].upper(), "../" + entry["key"][3:]]
                               if k != entry["key"]])
    return "error"


def m_task_type(rng, members, manifest, marker):
    entry = _entry(rng, manifest)
    entry["task"] = rng.choice([t for t in [entry["task"] + "\n", "engine_tasks.Total", "engine_tasks.Toy", "../x",
                                            "os.system", "a" * 250, "é"] if t != entry["task"]])
    return "error"


def m_entries(rng, members, manifest, marker):
    entries = manifest["entries"]
    if rng.random() < 0.5:
        del entries[rng.randrange(len(entries))]
    else:
        entries.insert(rng.randrange(len(entries) + 1), copy.deepcopy(rng.choice(entries)))
    return "error"


def m_nesting(rng, members, manifest, marker):
    """Deep nesting: the whole manifest, or inside an entry (as bytes: the manifest is replaced)."""
    depth = rng.choice([65, 200, 5000, 100_000])
    if rng.random() < 0.3:
        return b"[" * depth + b"]" * depth, "error"
    _entry(rng, manifest)["steps"] = "@@"
    return json.dumps(manifest).replace('"@@"', "[" * depth + "]" * depth).encode(), "error"


def m_manifest_bytes(rng, members, manifest, marker):
    """The manifest's bytes: bits flipped (a flip inside a string may leave it valid), cut, NaN, or garbage."""
    data = bytearray(json.dumps(manifest).encode())
    kind = rng.choice(["flip", "cut", "nan", "garbage"])
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), "either"
    if kind == "cut":
        return bytes(data[: rng.randrange(len(data))]), "error"
    if kind == "nan":
        return bytes(data).replace(b'"seconds": ', b'"seconds": NaN, "x": ', 1), "error"
    return rng.choice([b"", b"\xff\xfe", b"null", b'"x"', b"[]", b"3", b"{}", bytes(100)]), "error"


MEMBER_MUTATIONS = [m_drop, m_duplicate, m_reorder, m_manifest_not_first, m_rename, m_truncate_member,
                    m_flip_member, m_extra, m_kind, m_header_size_lie]
MANIFEST_MUTATIONS = [m_field_type, m_field_drop_or_add, m_top_level, m_top_level_note, m_steps, m_evil_class,
                      m_evil_class, m_evil_nested, m_field_value, m_config, m_sizes, m_sha, m_file_names, m_key,
                      m_task_type, m_entries, m_nesting, m_manifest_bytes]


def _compressed_damage(rng, data: bytes) -> bytes:
    kind = rng.choice(["cut", "flip", "append"])
    if kind == "cut":
        return data[: rng.randrange(len(data))]
    if kind == "flip":
        b = bytearray(data)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    return data + rng.choice([b"\x00", b"garbage", gzip.compress(b"more"), bytes(rng.randrange(1, 3000))])


def _raw_damage(rng, raw: bytes) -> bytes:
    b = bytearray(raw)
    headers = [i for i in range(0, len(b), 512) if b[i + 257:i + 262] == b"ustar"]
    for _ in range(rng.randint(1, 3)):
        at = rng.choice(headers) + rng.randrange(512) if rng.random() < 0.7 else rng.randrange(len(b))
        b[at] = rng.randrange(256)
    return bytes(b) if rng.random() < 0.8 else bytes(b[: rng.randrange(len(b))])


def _case(rng, real, marker) -> tuple[bytes, str, str]:
    """(archive bytes, expected verdict, what was done)."""
    members = [dataclasses.replace(m) for m in real[0]]
    manifest = copy.deepcopy(real[1])
    done, verdict = [], None
    if rng.random() < 0.08:
        return _compressed_damage(rng, _archive(members, manifest)), "either", "compressed bytes"
    if rng.random() < 0.08:  # headers and data of the tar itself (a flip in padding changes nothing)
        return _archive(members, manifest, lambda raw: _raw_damage(rng, raw)), "either", "tar bytes"
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
        choices = MEMBER_MUTATIONS + (MANIFEST_MUTATIONS if isinstance(manifest, dict) else [])
        mutation = rng.choice(choices)
        try:
            result = mutation(rng, members, manifest, marker)
        except (LookupError, TypeError, AttributeError):  # an earlier change took what this one changes
            continue
        if isinstance(result, tuple):  # the manifest as bytes from now on
            manifest, result = result
        done.append(mutation.__name__)
        verdict = result if verdict is None else "either"
    return _archive(members, manifest), verdict, "+".join(done)


def _check(code: int, err: str, verdict: str, store_before, store_after, real_files, label: str) -> str:
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pml: error: "), (label, err)
        assert verdict != "ok", (label, err)
        assert store_after == store_before, label  # nothing written, the staging folder removed
        return "error"
    assert code == 0, (label, code, err)
    assert verdict != "error", (label, "accepted")
    for name, data in store_after.items():  # only the real archive's files, byte for byte
        if name.endswith(".origin"):  # beside each installed entry: where it came from (pml.engine.provenance)
            assert json.loads(data)["origin"]["archive"] == "a.tar.gz", (label, name)
            continue
        assert store_before.get(name, real_files.get(name)) == data, (label, name)
    return "ok"


@pytest.mark.slow
def test_fuzzed_archives_never_crash_never_run_code_and_never_install_a_forgery(real, tmp_path, capsys,
                                                                                 monkeypatch):
    marker = tmp_path / "marker"
    this_before = "this" in sys.modules
    build = {"dir": tmp_path}
    monkeypatch.setattr(paths, "build_dir", lambda: build["dir"])
    rng = random.Random(20220314)
    outcomes: dict[str, int] = {}
    for i in range(N_CASES):
        case_rng = random.Random(rng.getrandbits(64))
        data, verdict, label = _case(case_rng, real, marker)
        folder = tmp_path / f"case{i}"
        shutil.copytree(real[3], folder / "_build")
        build["dir"] = folder / "_build"
        store_root = folder / "_build" / "results" / "tasks"
        before = _files(store_root)
        path = folder / "a.tar.gz"
        path.write_bytes(data)
        label = f"case {i} ({label})"
        try:
            code = cli.main(["results", "unpack", str(path)])
        except BaseException as exc:  # name the case that broke the property
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}") from exc
        outcome = _check(code, capsys.readouterr().err, verdict, before, _files(store_root), real[2], label)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if i % 10 == 0:  # verify reads the archive the same way: the same verdict
            shutil.rmtree(folder / "_build")
            shutil.copytree(real[3], folder / "_build")
            try:
                again = cli.main(["results", "verify", str(path), "--sample", "2"])
            except BaseException as exc:
                raise AssertionError(f"{label}, verify: {type(exc).__name__}: {exc}") from exc
            captured = capsys.readouterr()
            assert again == (0 if outcome == "ok" else 2), (label, captured.err)
            if again == 2:
                assert captured.err.count("\n") == 1 and captured.err.startswith("pml: error: "), captured.err
        shutil.rmtree(folder)
        assert not marker.exists(), label
    assert ("this" in sys.modules) == this_before
    assert "Beautiful is better than ugly" not in capsys.readouterr().out
    # the generator exercises both sides: some mutated archives are still valid, most are not
    assert outcomes.get("ok", 0) >= 15 and outcomes.get("error", 0) >= N_CASES // 2, outcomes
