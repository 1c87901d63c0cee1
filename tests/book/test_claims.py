import json
import re

import pytest

from pml.book import claims


def test_checks():
    assert claims.Check("between", low=1, high=2).passes(1.5)
    assert not claims.Check("between", low=1, high=2).passes(2.5)
    assert claims.Check("at_least", low=0).passes(0)
    assert not claims.Check("at_most", high=0).passes(0.1)
    assert claims.Check("close", target=-0.5, atol=0.1).passes(-0.45)
    assert not claims.Check("close", target=-0.5, atol=0.1).passes(float("nan"))
    with pytest.raises(ValueError, match="unknown check kind 'bogus'; valid"):
        claims.Check("bogus")
    with pytest.raises(ValueError, match="needs"):
        claims.Check("between", low=1)


def test_registry_is_well_formed():
    reg = claims.registry()
    assert reg, "no claims declared"
    for cid, claim in reg.items():
        assert cid.startswith("C") and claim.id == cid
        claims._id_key(cid)  # C<section>.<n>
        assert set(claim.profiles) <= {"smoke", "ci", "paper"}
        assert claim.statement and claim.quantity and claim.paper


def test_judge_depends_on_profile():
    claim = claims.get("C1.3")
    assert claims.judge(claim, -0.5, "ci").verdict == claims.REPRODUCED
    assert claims.judge(claim, -0.9, "ci").verdict == claims.NOT_REPRODUCED
    assert claims.judge(claim, -0.9, "smoke").verdict == claims.NOT_CHECKED
    assert claims.judge(claim, None, "ci").verdict == claims.MISSING
    assert not claims.judge(claim, -0.9, "ci").ok
    with pytest.raises(KeyError, match="unknown claim 'C9.9'"):
        claims.get("C9.9")


def test_report_writes_json_and_collect_recomputes(build_tmp):
    measured = {"C1.1": 6e-17, "C1.2": 0.0, "C1.3": -0.52, "C1.4": 0.5}
    table = claims.report("01_introduction", "ci", measured)
    assert "<table" in table._repr_html_()
    payload = json.loads((build_tmp / "claims" / "ci" / "01_introduction.json").read_text())
    assert payload["measured"]["C1.3"] == -0.52
    verdicts = {v.claim.id: v.verdict for v in claims.collect("ci", ["01_introduction"])}
    assert verdicts == {"C1.1": "reproduced", "C1.2": "reproduced", "C1.3": "reproduced", "C1.4": "not reproduced"}
    # verdicts come from the measured values, not from what the file says
    payload["verdicts"][0]["verdict"] = "reproduced"
    payload["measured"]["C1.1"] = 1.0
    (build_tmp / "claims" / "ci" / "01_introduction.json").write_text(json.dumps(payload))
    assert {v.claim.id: v.verdict for v in claims.collect("ci", ["01_introduction"])}["C1.1"] == "not reproduced"


def test_report_rejects_missing_or_unknown_ids(build_tmp):
    with pytest.raises(ValueError, match=r"missing for \['C1.4'\]"):
        claims.report("01_introduction", "ci", {"C1.1": 1, "C1.2": 1, "C1.3": 1})
    with pytest.raises(ValueError, match="unknown ids"):
        claims.report("01_introduction", "ci", {"C1.1": 1, "C1.2": 1, "C1.3": 1, "C1.4": 1, "C7.7": 1})
    with pytest.raises(TypeError, match="number"):
        claims.report("01_introduction", "ci", {"C1.1": "x", "C1.2": 1, "C1.3": 1, "C1.4": 1})


def test_missing_results_are_reported(build_tmp):
    verdicts = claims.collect("paper", ["01_introduction"])
    assert {v.verdict for v in verdicts} == {claims.MISSING}
    assert not any(v.ok for v in verdicts)


def test_anchor_and_the_chapter_table_rows_carry_it(build_tmp):
    assert claims.anchor("C2.6") == "claim-C2-6"
    table = claims.report("01_introduction", "ci", {"C1.1": 6e-17, "C1.2": 0.0, "C1.3": -0.52, "C1.4": 0.5})
    out = table._repr_html_()
    ids = re.findall(r'<tr id="([^"]+)">', out)
    assert ids == [claims.anchor(v.claim.id) for v in table.verdicts]
    assert out.count("<tr") == len(table.verdicts) + 1  # the heading row has no id


def test_known_deviation_is_a_failed_claim_with_a_reason():
    deviating, plain = claims.get("C2.16"), claims.get("C1.3")
    assert deviating.deviation and not plain.deviation
    assert claims.judge(deviating, 0.4, "ci").known_deviation
    assert not claims.judge(deviating, 2.5, "ci").known_deviation  # reproduced
    assert not claims.judge(plain, -0.9, "ci").known_deviation  # not reproduced, unexplained
    assert "(known deviation)" in claims.ClaimTable([claims.judge(deviating, 0.4, "ci")]).rows()[0][5]
