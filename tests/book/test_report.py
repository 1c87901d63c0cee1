import html

from pml.book import claims, report, runner


def _judged_chapter_2():
    """Chapter 2's claims judged at ci with every value 1.0: reproduced, not reproduced, a known deviation (C2.16)
    and a claim judged only at paper (C2.6) among them."""
    return claims.report("02_piecewise_linear", "ci", {c.id: 1.0 for c in claims.for_chapter("02_piecewise_linear")})


def _row(markup: str, claim_id: str) -> str:
    """The dashboard row of one claim."""
    start = markup.index(f">{claim_id}<")
    end = markup.find('<div class="pml-report-claim">', start)
    return markup[start:end if end >= 0 else None]


def test_category_of_every_kind_of_verdict():
    claim, deviating = claims.get("C1.3"), claims.get("C2.16")
    cases = {
        "reproduced": claims.judge(claim, -0.5, "ci"),
        "not reproduced": claims.judge(claim, -0.9, "ci"),
        "known deviation": claims.judge(deviating, 0.4, "ci"),
        "not checked": claims.judge(claim, -0.9, "smoke"),
        "missing": claims.judge(claim, None, "ci"),
        "not computed": claims.judge(claim, None, "ci", missing_cpu_hours=3.0),
    }
    assert {key: report.category(v) for key, v in cases.items()} == {key: key for key in cases}
    assert set(cases) == {key for key, _, _ in report.CATEGORIES}


def test_dashboard_shows_the_verdicts_pml_claims_computes(build_tmp):
    _judged_chapter_2()
    board = report.dashboard("ci")
    table = runner.summary("ci")[0]
    assert [(v.claim.id, v.verdict, v.measured) for v in board.verdicts] == \
           [(v.claim.id, v.verdict, v.measured) for v in table.verdicts]
    counts = board.counts()
    assert sum(counts.values()) == len(table.verdicts) == len(claims.registry())
    verdicts = table.counts()
    assert counts["reproduced"] == verdicts.get(claims.REPRODUCED, 0) > 0
    assert counts["not reproduced"] + counts["known deviation"] == verdicts.get(claims.NOT_REPRODUCED, 0)
    assert counts["known deviation"] == sum(v.known_deviation for v in table.verdicts) > 0
    assert counts["not checked"] == verdicts.get(claims.NOT_CHECKED, 0) > 0
    assert board.numbers() == {"n_claims": len(table.verdicts), "n_reproduced": verdicts.get(claims.REPRODUCED, 0),
                               "n_failed": verdicts.get(claims.NOT_REPRODUCED, 0),
                               "n_deviations": counts["known deviation"], "n_not_computed": 0}
    assert list(board.chapters()) == [c for c in runner.chapters() if claims.for_chapter(c)]
    assert f"{counts['reproduced']} of {len(table.verdicts)} claims reproduced at ci" in str(board)


def test_dashboard_html(build_tmp):
    _judged_chapter_2()
    board = report.dashboard("ci")
    summary, chapters = board.summary()._repr_html_(), board.by_chapter()._repr_html_()
    for markup in (summary, chapters):
        assert "<script" not in markup and "http://" not in markup and "https://" not in markup
        assert markup.count("<div") == markup.count("</div>")
    assert summary.count('role="img"') == 1 + len(board.chapters()) and "not reproduced (known deviation)" in summary
    # the overview links each chapter to its section of the claims by chapter
    for stem in board.chapters():
        assert f'href="#{report.section_id(stem)}"' in summary and f'id="{report.section_id(stem)}"' in chapters
    # a claim of a chapter that ran links to the row of that chapter's table that judges it
    assert f'href="02_piecewise_linear.html#{claims.anchor("C2.1")}"' in chapters
    assert 'href="02_piecewise_linear.html"' in chapters
    # the known deviation's reason is one click away, and only there
    deviation = _row(chapters, "C2.16")
    assert '<details class="pml-report-why">' in deviation and html.escape(claims.get("C2.16").deviation) in deviation
    assert "pml-report-why" not in _row(chapters, "C2.1")
    # judged at paper only: the ci value, marked indicative
    assert "ci value <strong>1</strong>" in _row(chapters, "C2.6") and "indicative" in _row(chapters, "C2.6")
    # chapter 1 did not run at ci: no link to a table it does not have, its claims folded away
    assert "01_introduction.html" not in chapters and "C1.1" in chapters
    assert 'class="pml-report-unrun"' in chapters


def test_inputs_footnote_and_escaping():
    claim = claims.Claim(id="C9.1", chapter="09_fake", statement="a < b & c", quantity="x", paper="<1",
                         check=claims.Check("at_most", high=1), profiles=("ci",))
    board = report.Dashboard([claims.judge(claim, 0.5, "ci")], "ci",
                             inputs={"C9.1": report.Inputs("unverified", "from archive <a>.tar.gz (unverified)")})
    out = board.by_chapter()._repr_html_()
    assert "a &lt; b &amp; c" in out and "paper: &lt;1" in out and "<a>.tar.gz" not in out
    assert 'pml-report-tag-unverified' in out and "from archive &lt;a&gt;.tar.gz" in out


def test_id_ranges_and_chapter_titles():
    assert report._id_ranges(["C2.1", "C2.2", "C2.3", "C2.7", "C2.9", "C2.10"]) == "C2.1-C2.3, C2.7, C2.9-C2.10"
    assert report.chapter_title("02_piecewise_linear").startswith("2. ")
    assert report.chapter_title("no_such_chapter") == "no_such_chapter"
