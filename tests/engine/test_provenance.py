"""Provenance of stored results: entries installed from an archive carry an origin record bound to their bytes,
computed entries carry none, verify marks what it matched, and the claims (their files, their tables, `pml claims`
and the reproduction report's helpers) say per claim whether its inputs were computed here, verified here, or taken
unverified from a named archive."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest
from engine_tasks import Toy, ToySweep

from pml import cli
from pml.book import claims, params
from pml.engine import Store, archive, compute, graph, partial, provenance, run


@pytest.fixture(autouse=True)
def fresh_registry():
    provenance.clear_used()
    yield
    provenance.clear_used()


def _install(path, store):
    """``unpack`` followed by what it records for each entry it wrote (the call its loop makes)."""
    report = archive.unpack(path, store)
    manifest = json.loads(tarfile.open(path).extractfile("manifest.json").read())
    assert report.sha256 == provenance.file_sha256(path)
    origin = provenance.archive_origin(path, report.sha256, manifest)
    for entry in manifest["entries"]:
        json_sha = entry["files"][f"entries/{entry['task']}/{entry['key']}.json"]["sha256"]
        provenance.record_origin(store, entry["task"], entry["key"], origin, entry_sha256=json_sha)
    return report, manifest


@pytest.fixture
def shipped(tmp_path):
    """An archive of two toy tasks packed on "the cluster", with a manifest that names its machine and commit."""
    cluster = Store(tmp_path / "cluster")
    tasks = ToySweep(seeds=(0, 1)).tasks()
    compute(tasks, store=cluster, client=False)
    path = tmp_path / "ch-toy.tar.gz"
    archive.pack({"01_toy/toys": tasks}, path, profile="ci", store=cluster)
    return path, tasks


def test_machine_line_and_commit():
    line = provenance.machine_line()
    assert "cores" in line and "\n" not in line
    commit = provenance.pml_commit()
    assert commit is None or len(commit.split("+")[0]) == 40


def test_unpacked_entries_carry_their_origin_and_computed_ones_none(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    here = Toy(seed=7)
    compute([here], store=laptop, client=False)
    report, manifest = _install(path, laptop)
    assert report.added == 2
    assert provenance.provenance(laptop, here) == "computed here"
    assert provenance.origin_record(laptop, here.task_type(), here.key()) is None
    # an archive's entry the store already holds as a result computed here (other bytes) stays ours
    origin = provenance.archive_origin(path, report.sha256, manifest)
    assert not provenance.record_origin(laptop, here.task_type(), here.key(), origin, entry_sha256="0" * 64)
    assert provenance.provenance(laptop, here) == "computed here"
    for task in tasks:
        assert provenance.provenance(laptop, task) == "archive ch-toy.tar.gz (unverified)"
        origin = provenance.origin_record(laptop, task.task_type(), task.key())["origin"]
        assert origin["sha256"] == provenance.file_sha256(path) and origin["profile"] == "ci"
        assert origin["created"] == manifest["created"] and origin["unpacked"]
    # the record sits beside the entry and never changes the entry's own files or what the store reads
    assert provenance.record_path(laptop, tasks[0].task_type(), tasks[0].key()).exists()
    assert laptop.get(tasks[0]) is not None
    summary = provenance.summary(laptop, [*tasks, here])
    assert (summary.tasks, summary.computed, summary.unverified, summary.verified) == (3, 1, 2, 0)
    assert summary.label() == "from archive ch-toy.tar.gz (unverified: 2 of 3 tasks; 1 computed here)"


def test_manifest_text_is_data_kept_short_on_one_line(tmp_path):
    origin = provenance.archive_origin(tmp_path / "a.tar.gz", "0" * 64,
                                       {"machine": "x\n<b>" + "y" * 500, "profile": ["not", "text"], "pml_commit": 3})
    assert "\n" not in origin["machine"] and len(origin["machine"]) < 220
    assert "profile" not in origin and origin["pml_commit"] == "3"
    with pytest.raises(ValueError, match="64 lowercase hex"):
        provenance.archive_origin(tmp_path / "a.tar.gz", "xyz", {})
    with pytest.raises(ValueError, match="not a store entry name"):
        provenance.record_path(Store(tmp_path), "../evil", "0" * 64)


def test_verify_marks_then_recomputation_overrides(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    _, manifest = _install(path, laptop)
    task = tasks[0]
    member = f"entries/{task.task_type()}/{task.key()}.json"
    sha = next(e["files"][member]["sha256"] for e in manifest["entries"] if e["key"] == task.key())
    assert not provenance.mark_verified(laptop, task.task_type(), task.key(), "identical", entry_sha256="f" * 64)
    assert provenance.provenance(laptop, task).endswith("(unverified)")  # other bytes were checked: no mark
    assert provenance.mark_verified(laptop, task.task_type(), task.key(), "identical; 0.01 s", entry_sha256=sha)
    assert provenance.provenance(laptop, task) == "verified here"
    check = provenance.origin_record(laptop, task.task_type(), task.key())["check"]
    assert check["verdict"] == "matched" and check["date"] and check["detail"] == "identical; 0.01 s"
    # a later check that differs wins over the earlier match
    assert provenance.mark_mismatch(laptop, task.task_type(), task.key(), "result['x'][0]: 1.0 vs 2.0")
    assert provenance.provenance(laptop, task) == (
        "archive ch-toy.tar.gz (unverified; a recomputation here differed)")
    # unpacking again keeps the check (same bytes); recomputing the entry here makes it ours
    _install(path, laptop)
    assert "differed" in provenance.provenance(laptop, task)
    laptop.put(task, {"x": 1.0}, seconds=0.1)
    assert provenance.provenance(laptop, task) == "computed here"
    assert not provenance.mark_verified(Store(tmp_path / "empty"), task.task_type(), task.key(), "identical")


def test_unpacking_again_keeps_the_check_of_the_same_bytes(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    _install(path, laptop)
    for task in tasks:
        assert provenance.mark_verified(laptop, task.task_type(), task.key(), "identical")
    _install(path, laptop)  # the origin is recorded again; the check was of these very bytes
    assert {provenance.provenance(laptop, t) for t in tasks} == {"verified here"}
    # a check recorded on an entry without an origin (ours) is kept but changes nothing: it was computed here
    here = Toy(seed=7)
    compute([here], store=laptop, client=False)
    assert provenance.mark_verified(laptop, here.task_type(), here.key(), "identical")
    assert provenance.provenance(laptop, here) == "computed here"


def test_a_malformed_record_is_never_trusted(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    _install(path, laptop)
    record = provenance.record_path(laptop, tasks[0].task_type(), tasks[0].key())
    for junk in (b"[]", b"{", b'{"format": "pml-origin/1"}', b"x" * (provenance.MAX_RECORD_BYTES + 1)):
        record.write_bytes(junk)
        assert provenance.provenance(laptop, tasks[0]).startswith("archive ? (unreadable origin record)")


def test_engine_run_notes_each_steps_provenance(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    _install(path, laptop)
    run(ToySweep(seeds=(0, 1)), store=laptop)
    run(ToySweep(seeds=(5,)), store=laptop)
    run(ToySweep(seeds=(0, 1)), store=laptop)  # a rerun replaces the earlier use of an equal sweep
    used = provenance.used_steps()
    assert [u.sweep for u in used] == [ToySweep(seeds=(5,)), ToySweep(seeds=(0, 1))]
    assert used[0].summary().kind() == "computed here"
    assert used[1].summary().to_dict()["archives"] == {"ch-toy.tar.gz": {"verified": 0, "unverified": 2}}


def _chapter_run(monkeypatch, laptop, build_tmp):
    """Run two toy steps named fig1a (from the archive) and fig1b (computed here), as chapter 2 would."""
    fig1a, fig1b = ToySweep(seeds=(0, 1)), ToySweep(seeds=(9,))
    monkeypatch.setattr(partial, "_NAMES", [])
    partial.name_steps({"fig1a": fig1a, "fig1b": fig1b})  # as the chapter's coverage line does
    run(fig1a, store=laptop)
    run(fig1b, store=laptop)
    values = {c.id: 1.0 for c in claims.for_chapter("02_piecewise_linear")}
    return claims.report("02_piecewise_linear", "ci", values)


def test_claims_record_and_show_their_inputs(shipped, tmp_path, build_tmp, monkeypatch, capsys):
    path, _ = shipped
    laptop = Store(tmp_path / "laptop")
    _install(path, laptop)
    table = _chapter_run(monkeypatch, laptop, build_tmp)
    payload = json.loads((build_tmp / "claims" / "ci" / "02_piecewise_linear.json").read_text())
    by_claim = payload["provenance"]["claims"]
    assert by_claim["C2.1"]["steps"] == ["fig1a"] and by_claim["C2.1"]["basis"] == "the claim's steps"
    assert by_claim["C2.1"]["label"] == "from archive ch-toy.tar.gz (unverified: 2 of 2 tasks)"
    assert by_claim["C2.2"]["label"] == "computed here"  # fig1b only
    assert by_claim["C2.6"]["tasks"] == 3  # fig1a and fig1b
    # a claim whose steps did not run here is traced to every step the chapter ran, and says so
    assert by_claim["C2.14"]["basis"] == claims.CHAPTER_BASIS and by_claim["C2.14"]["steps"] == ["fig1a", "fig1b"]
    assert set(payload["provenance"]["steps"]) == {"fig1a", "fig1b"}
    html = table._repr_html_()
    assert "<th>inputs</th>" in html and "from archive ch-toy.tar.gz (unverified" in html
    assert "[chapter&#x27;s steps]" in html

    assert cli.main(["claims", "--profile", "ci"]) in (0, 1)
    out = capsys.readouterr().out
    assert "inputs: from archive ch-toy.tar.gz (unverified: 2 of 2 tasks)" in out
    assert "inputs: computed here" in out
    assert "on unverified results from archive ch-toy.tar.gz" in out
    assert cli.main(["claims", "--profile", "ci", "--json"]) in (0, 1)
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["C2.1"]["inputs"]["kind"] == "unverified" and rows["C2.2"]["inputs"]["kind"] == "computed here"
    assert rows["C1.1"]["inputs"] == {"label": "-"}  # chapter 1 did not run at ci here


def test_report_table_and_sentence_after_verify(shipped, tmp_path, build_tmp, monkeypatch):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    _install(path, laptop)
    for task in tasks:
        provenance.mark_verified(laptop, task.task_type(), task.key(), "identical")
    _chapter_run(monkeypatch, laptop, build_tmp)
    from pml.book import runner

    table = claims.with_inputs(runner.summary("ci")[0], "ci")
    assert "inputs" in table.table().columns
    cells = dict(zip([v.claim.id for v in table.verdicts], [row[-1] for row in table.table().rows]))
    assert cells["C2.1"] == "verified here (2 of 2 tasks from archive ch-toy.tar.gz)"
    assert cells["C2.2"] == "computed here"
    sentence = claims.inputs_summary("ci")
    assert sentence.startswith("Of 16 claims,") and "0 on unverified results" in sentence


def test_claims_file_without_provenance_says_so(build_tmp):
    claims.report("01_introduction", "ci", {"C1.1": 6e-17, "C1.2": 0.0, "C1.3": -0.5, "C1.4": 0.1})
    path = build_tmp / "claims" / "ci" / "01_introduction.json"
    payload = json.loads(path.read_text())
    assert payload["provenance"]["claims"]["C1.1"]["label"] == "computed here"  # no steps ran: nothing stored used
    del payload["provenance"]
    path.write_text(json.dumps(payload))
    table = claims.with_inputs(claims.ClaimTable(claims.collect("ci", ["01_introduction"])), "ci")
    assert set(table.inputs.values()) == {claims.NOT_RECORDED}


def test_declared_steps_are_the_chapters_steps():

    for chapter in {c.chapter for c in claims.registry().values() if c.steps}:
        names = set(params.chapter_steps(chapter, "smoke"))
        for claim in claims.for_chapter(chapter):
            assert set(claim.steps or ()) <= names, f"{claim.id} names steps {claim.steps}; the chapter has {names}"


def test_graph_inputs_count_once(tmp_path):
    store = Store(tmp_path)
    tasks = graph(ToySweep(seeds=(0, 1)).tasks() * 2)
    compute(tasks, store=store, client=False)
    assert provenance.summary(store, ToySweep(seeds=(0, 1)).tasks() * 2).tasks == 2


ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")


def _key(tmp_path, name):
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


@ssh_keygen
def test_signed_archive_names_its_signer_and_a_changed_one_is_refused(shipped, tmp_path):
    path, tasks = shipped
    alice, mallory = _key(tmp_path, "alice"), _key(tmp_path, "mallory")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice@example.org {alice.with_suffix('.pub').read_text()}")
    with pytest.raises(provenance.SignatureError, match="no such file.*pml results sign"):
        provenance.check_signature(path, allowed)
    sig = provenance.sign_archive(path, alice)
    assert sig == tmp_path / "ch-toy.tar.gz.sig" and sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    signer = provenance.check_signature(path, allowed)
    assert signer == "alice@example.org"
    laptop = Store(tmp_path / "laptop")
    archive.unpack(path, laptop)
    manifest = json.loads(tarfile.open(path).extractfile("manifest.json").read())
    origin = provenance.archive_origin(path, provenance.file_sha256(path), manifest, signer=signer)
    provenance.record_origin(laptop, tasks[0].task_type(), tasks[0].key(), origin)
    assert provenance.origin_record(laptop, tasks[0].task_type(), tasks[0].key())["origin"]["signer"] == signer

    provenance.sign_archive(path, mallory)  # a key the allowed-signers file does not name
    with pytest.raises(provenance.SignatureError, match="not by a key of allowed_signers"):
        provenance.check_signature(path, allowed)
    provenance.sign_archive(path, alice)
    with open(path, "ab") as fh:  # changed after signing
        fh.write(b"\0")
    with pytest.raises(provenance.SignatureError, match="bad signature ch-toy.tar.gz.sig, refusing the archive"):
        provenance.check_signature(path, allowed)


def test_pack_unpack_verify_record_provenance_by_themselves(shipped, tmp_path):
    path, tasks = shipped
    laptop = Store(tmp_path / "laptop")
    archive.unpack(path, laptop)
    origin = provenance.origin_record(laptop, tasks[0].task_type(), tasks[0].key())["origin"]
    assert origin["archive"] == "ch-toy.tar.gz" and origin["machine"] == provenance.machine_line()
    assert ("pml_commit" in origin) == (provenance.pml_commit() is not None)
    assert {provenance.provenance(laptop, t) for t in tasks} == {"archive ch-toy.tar.gz (unverified)"}
    for task in tasks:  # as if unpacked by a pml that recorded no origins: unpacking again records them
        provenance.record_path(laptop, task.task_type(), task.key()).unlink()
    assert archive.unpack(path, laptop).present == len(tasks)
    assert {provenance.provenance(laptop, t) for t in tasks} == {"archive ch-toy.tar.gz (unverified)"}
    archive.verify(path, sample=len(tasks), log=lambda line: None, store=laptop)
    assert {provenance.provenance(laptop, t) for t in tasks} == {"verified here"}


@ssh_keygen
def test_cli_signs_and_unpacks_only_archives_of_allowed_signers(shipped, tmp_path, build_tmp, capsys):
    path, tasks = shipped
    alice, mallory = _key(tmp_path, "alice"), _key(tmp_path, "mallory")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice@example.org {alice.with_suffix('.pub').read_text()}")
    assert cli.main(["results", "sign", str(path), "--key", str(mallory)]) == 0
    assert cli.main(["results", "unpack", str(path), "--allowed-signers", str(allowed)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pml: error: ") and "allowed_signers" in err[0]
    assert not (build_tmp / "results").exists()  # nothing installed
    assert cli.main(["results", "sign", str(path), "--key", str(alice)]) == 0
    assert cli.main(["results", "unpack", str(path), "--allowed-signers", str(allowed)]) == 0
    assert "signed by alice@example.org" in capsys.readouterr().out
    origin = provenance.origin_record(Store(), tasks[0].task_type(), tasks[0].key())["origin"]
    assert origin["signer"] == "alice@example.org"
