"""The reproduction report as a dashboard: verdict counts and a bar, then every claim grouped by chapter.

:func:`dashboard` collects the verdicts of a profile exactly as ``pml claims`` does (:func:`pml.book.runner.summary`,
which recomputes them from the measured values the chapters wrote) and renders them as HTML for the book: each
claim with a coloured verdict badge, a link to the row of its chapter's claims table that judged it
(:func:`pml.book.claims.anchor`), the reason of a known deviation behind a click, and where its inputs came from.
Nothing here judges a claim; it only groups and shows the verdicts.

The HTML carries its own ``<style>`` block (class names start with ``pml-report``) and no script, so the page needs
no change to the book's configuration and loads nothing from outside.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Mapping, Sequence

from pml import paths
from pml.book import claims

#: The categories the dashboard counts, in the order it shows them: (key, colour, text colour).
CATEGORIES = (
    ("reproduced", "#1a7f37", "#ffffff"),
    ("known deviation", "#d4a72c", "#2b1d00"),
    ("not reproduced", "#cf222e", "#ffffff"),
    ("not checked", "#6e7781", "#ffffff"),
    ("not computed", "#afb8c1", "#1f2328"),
    ("missing", "#eaeef2", "#1f2328"),
)
_COLOURS = {key: (bg, fg) for key, bg, fg in CATEGORIES}
#: Categories the summary always lists, even at zero (a reader should see "0 not reproduced").
ALWAYS_SHOWN = ("reproduced", "known deviation", "not reproduced", "not checked", "not computed")


def category(verdict: claims.Verdict) -> str:
    """The dashboard category of a verdict: one of the keys of :data:`CATEGORIES`.

    Parameters
    ----------
    verdict : pml.book.claims.Verdict
        A computed verdict.

    Returns
    -------
    str
        ``"known deviation"`` for a claim not reproduced with an explained deviation, ``"not reproduced"``,
        ``"reproduced"``, ``"not checked"`` (not meaningful at this profile), ``"not computed"`` (a stored build
        lacks its tasks) or ``"missing"`` (its chapter did not run at this profile).
    """
    if verdict.known_deviation:
        return "known deviation"
    return {
        claims.REPRODUCED: "reproduced",
        claims.NOT_REPRODUCED: "not reproduced",
        claims.NOT_CHECKED: "not checked",
        claims.NOT_COMPUTED: "not computed",
        claims.MISSING: "missing",
    }[verdict.verdict]


def category_label(key: str, profile: str) -> str:
    """How the summary names a category at ``profile``: ``not checked at ci``, ``not computed at paper``, ..."""
    if key == "not checked":
        return f"not checked at {profile}"
    if key == "not computed":
        return f"not computed at {profile}"
    if key == "known deviation":
        return "not reproduced (known deviation)"
    if key == "missing":
        return f"missing (chapter not run at {profile})"
    return key


def chapter_title(stem: str) -> str:
    """The first ``# `` heading of ``book/<stem>.md`` (its stem when the file has none)."""
    path = paths.repo_root() / "book" / f"{stem}.md"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return stem


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Where one claim's inputs came from: ``kind`` (computed here, verified here, unverified, or ``None`` when not
    recorded) and the phrase of :func:`pml.book.claims.with_inputs`."""

    kind: str | None
    label: str


def _inputs(profile: str, run: str | None, verdicts: Sequence[claims.Verdict]) -> dict[str, Inputs]:
    """claim id -> :class:`Inputs`, from the claims files (claims whose chapter wrote none are left out)."""
    from pml.engine.provenance import Summary

    recorded = claims.provenance_of(profile, run=run)
    labels = claims.with_inputs(claims.ClaimTable(list(verdicts)), profile, run=run).inputs or {}
    out = {}
    for cid, info in recorded.items():
        try:
            kind = Summary.from_dict(info).kind() if info else None
        except ValueError:
            kind = None
        out[cid] = Inputs(kind, labels.get(cid, claims.NOT_RECORDED))
    return out


class Html:
    """A block of HTML that a notebook displays as such (and prints as ``text``)."""

    def __init__(self, markup: str, text: str):
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class Dashboard:
    """The verdicts of one profile, for the reproduction report.

    Parameters
    ----------
    verdicts : sequence of pml.book.claims.Verdict
        The verdicts, in claim order (:func:`pml.book.claims.collect`).
    profile : str
        The profile they were judged at.
    inputs : mapping of str to Inputs, optional
        Where each claim's inputs came from, by claim id.
    note : str, optional
        How the run differs from its profile (``run ci+n_test=200: ...``), shown above the summary.
    """

    def __init__(self, verdicts: Sequence[claims.Verdict], profile: str,
                 inputs: Mapping[str, Inputs] | None = None, note: str | None = None):
        self.verdicts = list(verdicts)
        self.profile = profile
        self.inputs = dict(inputs or {})
        self.note = note

    def counts(self) -> dict[str, int]:
        """Category -> number of claims, for every key of :data:`CATEGORIES` (zeros included)."""
        return _count(self.verdicts)

    def numbers(self) -> dict[str, int]:
        """The counts the report's text quotes: ``n_claims``, ``n_reproduced``, ``n_failed`` (not reproduced, known
        deviations included), ``n_deviations`` and ``n_not_computed``."""
        counts = self.counts()
        return {"n_claims": len(self.verdicts), "n_reproduced": counts["reproduced"],
                "n_failed": counts["not reproduced"] + counts["known deviation"],
                "n_deviations": counts["known deviation"], "n_not_computed": counts["not computed"]}

    def chapters(self) -> dict[str, list[claims.Verdict]]:
        """Chapter stem -> its verdicts, in book order."""
        out: dict[str, list[claims.Verdict]] = {}
        for v in self.verdicts:
            out.setdefault(v.claim.chapter, []).append(v)
        return out

    # -- the two displayable parts -----------------------------------------------------------------------------

    def summary(self) -> Html:
        """The counts, one stacked bar and its legend (HTML), or as a line of text."""
        counts = self.counts()
        n = len(self.verdicts)
        shown = [k for k, _, _ in CATEGORIES if counts[k] or k in ALWAYS_SHOWN]
        note = f'<p class="pml-report-note">{html.escape(self.note)}</p>' if self.note else ""
        head = (f'<p class="pml-report-headline"><span class="pml-report-big">{counts["reproduced"]}</span> of '
                f'{n} claims reproduced at <code>{html.escape(self.profile)}</code></p>')
        legend = "".join(
            f'<li>{_swatch(k)}<span class="pml-report-count">{counts[k]}</span> '
            f'{html.escape(category_label(k, self.profile))}</li>' for k in shown)
        markup = (f'<div class="pml-report">{STYLE}{note}{head}{_bar(counts, n, self.profile, "pml-report-bar")}'
                  f'<ul class="pml-report-legend">{legend}</ul>{self._overview_html()}</div>')
        text = f"{counts['reproduced']} of {n} claims reproduced at {self.profile}: " + ", ".join(
            f"{counts[k]} {category_label(k, self.profile)}" for k in shown)
        return Html(markup, (self.note + "\n" if self.note else "") + text)

    def by_chapter(self) -> Html:
        """Every claim, grouped by chapter, with its badge, its link and its inputs (HTML), or as text."""
        sections, lines = [], []
        for stem, verdicts in self.chapters().items():
            sections.append(self._chapter_html(stem, verdicts))
            lines.append(chapter_title(stem))
            lines += [f"  {v.claim.id:<6} {_badge_text(v, self.profile):<28} {v.claim.statement}" for v in verdicts]
        return Html(f'<div class="pml-report">{STYLE}{"".join(sections)}</div>', "\n".join(lines))

    def _overview_html(self) -> str:
        """One line per chapter: its short title (a link to its section of :meth:`by_chapter`), a bar, its counts."""
        lines = []
        for stem, verdicts in self.chapters().items():
            counts = _count(verdicts)
            short = chapter_title(stem).split(":")[0]
            tally = " · ".join(f"{counts[k]} {k}" for k, _, _ in CATEGORIES if counts[k])
            lines.append(f'<li><a href="#{section_id(stem)}">{html.escape(short)}</a>'
                         f'{_bar(counts, len(verdicts), self.profile, "pml-report-minibar")}'
                         f'<span>{html.escape(tally)}</span></li>')
        return f'<ul class="pml-report-overview">{"".join(lines)}</ul>'

    def _chapter_html(self, stem: str, verdicts: list[claims.Verdict]) -> str:
        counts = _count(verdicts)
        ran = any(v.verdict != claims.MISSING for v in verdicts)
        title = html.escape(chapter_title(stem))
        title = f'<a href="{html.escape(stem)}.html">{title}</a>' if ran else title
        tally = " · ".join(f"{counts[k]} {html.escape(category_label(k, self.profile))}"
                           for k, _, _ in CATEGORIES if counts[k])
        rows = "".join(self._claim_html(stem, v, ran) for v in verdicts)
        if not ran:  # nothing measured: the claims' words stay one click away
            rows = (f'<details class="pml-report-unrun"><summary>its {len(verdicts)} claim'
                    f'{"s" if len(verdicts) != 1 else ""}</summary><div>{rows}</div></details>')
        return (f'<section class="pml-report-chapter" id="{section_id(stem)}"><h3 class="pml-report-title">{title}</h3>'
                f'<div class="pml-report-tally">{_bar(counts, len(verdicts), self.profile, "pml-report-minibar")}'
                f'<span>{tally}</span></div>{rows}{self._inputs_html(verdicts)}</section>')

    def _claim_html(self, stem: str, v: claims.Verdict, ran: bool) -> str:
        cid = html.escape(v.claim.id)
        ident = (f'<a class="pml-report-id" href="{html.escape(stem)}.html#{claims.anchor(v.claim.id)}" '
                 f'title="where chapter {html.escape(stem)} judges {cid}">{cid}</a>' if ran
                 else f'<span class="pml-report-id">{cid}</span>')
        facts = self._facts(v)
        more = [f'<details><summary>what is measured</summary><div>x = {html.escape(v.claim.quantity)}</div></details>']
        if v.known_deviation:
            more.insert(0, '<details class="pml-report-why"><summary>why: known deviation</summary>'
                           f'<div>{html.escape(v.claim.deviation)}</div></details>')
        return (f'<div class="pml-report-claim">{ident}{_badge(v, self.profile)}<div class="pml-report-body">'
                f'<div class="pml-report-statement">{html.escape(v.claim.statement)}</div>'
                f'<div class="pml-report-facts">{" · ".join(facts)}</div>{"".join(more)}</div></div>')

    def _facts(self, v: claims.Verdict) -> list[str]:
        """The line under a claim's words: what was measured against what check, and the paper's value."""
        check = f'check <code>{html.escape(v.claim.check.describe())}</code>'
        paper = f'paper: {html.escape(v.claim.paper)}'
        if v.verdict == claims.NOT_COMPUTED:
            from pml.engine.partial import hours_text

            hours = v.missing_cpu_hours
            lacks = "" if hours is None else f" ({hours_text(hours)} of its tasks missing)"
            return [f"not judged{html.escape(lacks)}", check, paper]
        if v.verdict == claims.MISSING:
            return [f"its chapter did not run at <code>{html.escape(self.profile)}</code>", check, paper]
        value = f"<strong>{html.escape(_fmt(v.measured))}</strong>"
        if v.verdict == claims.NOT_CHECKED:
            where = ", ".join(v.claim.profiles)
            return [f'{html.escape(self.profile)} value {value} <span class="pml-report-indicative">(indicative: '
                    f'judged at {html.escape(where)} only)</span>', check, paper]
        return [f"measured {value}", check, paper]

    def _inputs_html(self, verdicts: list[claims.Verdict]) -> str:
        """A chapter's footnote: where its claims' inputs came from, each phrase once with the claims it covers."""
        groups: dict[Inputs, list[str]] = {}
        for v in verdicts:
            if v.claim.id in self.inputs:
                groups.setdefault(self.inputs[v.claim.id], []).append(v.claim.id)
        if not groups:
            return ""
        items = []
        for inputs, ids in groups.items():
            kind = html.escape(inputs.kind or "not recorded")
            items.append(f'<li><span class="pml-report-which">{"all" if len(groups) == 1 else _id_ranges(ids)}'
                         f'</span><span class="pml-report-tag pml-report-tag-{_slug(kind)}" title="{kind}">'
                         f'{html.escape(inputs.label)}</span></li>')
        return f'<div class="pml-report-inputs"><span>inputs</span><ul>{"".join(items)}</ul></div>'

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_() + self.by_chapter()._repr_html_()

    def __str__(self) -> str:
        return f"{self.summary()}\n\n{self.by_chapter()}"

    __repr__ = __str__


def dashboard(profile: str, run: str | None = None) -> Dashboard:
    """The dashboard of every claim at ``profile``, from the claims files the chapters wrote.

    Parameters
    ----------
    profile : str
        The profile (``smoke``, ``ci`` or ``paper``).
    run : str, optional
        A run with command-line overrides (``ci+n_test=200``), judged by the profile's checks.

    Returns
    -------
    Dashboard
        Its :meth:`Dashboard.summary` and :meth:`Dashboard.by_chapter` display as HTML in a notebook.
    """
    from pml.book import runner

    table = runner.summary(profile, run)[0]
    return Dashboard(table.verdicts, profile, _inputs(profile, run, table.verdicts), note=table.note)


def section_id(stem: str) -> str:
    """The HTML ``id`` of a chapter's section in :meth:`Dashboard.by_chapter` (the summary's overview links to it,
    so the two parts belong on one page)."""
    return f"pml-report-{_slug(stem)}"


def _count(verdicts: Sequence[claims.Verdict]) -> dict[str, int]:
    """Category -> number of ``verdicts`` in it, for every key of :data:`CATEGORIES`."""
    out = {key: 0 for key, _, _ in CATEGORIES}
    for v in verdicts:
        out[category(v)] += 1
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _id_ranges(ids: list[str]) -> str:
    """``C2.1-C2.9, C2.15`` for consecutive claim numbers of one section."""
    keys = [claims._id_key(i) for i in ids]
    parts, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != (keys[i - 1][0], keys[i - 1][1] + 1):
            parts.append(ids[start] if i - 1 == start else f"{ids[start]}-{ids[i - 1]}")
            start = i
    return ", ".join(parts)


def _badge_text(v: claims.Verdict, profile: str) -> str:
    key = category(v)
    return {"not checked": f"not checked at {profile}", "missing": "missing"}.get(key, key)


def _badge(v: claims.Verdict, profile: str) -> str:
    """The verdict as a coloured pill; its title is the verdict's full text."""
    bg, fg = _COLOURS[category(v)]
    full = v.text + (" (known deviation)" if v.known_deviation else "")
    return (f'<span class="pml-report-badge" style="background:{bg};color:{fg}" title="{html.escape(full)}">'
            f'{html.escape(_badge_text(v, profile))}</span>')


def _swatch(key: str) -> str:
    bg, _ = _COLOURS[key]
    return f'<span class="pml-report-swatch" style="background:{bg}"></span>'


def _bar(counts: Mapping[str, int], n: int, profile: str, css_class: str) -> str:
    """A horizontal stacked bar of ``counts`` (pure HTML: one flex item per non-empty category)."""
    if not n:
        return ""
    segments = []
    for key, bg, fg in CATEGORIES:
        if counts.get(key):
            label = f"{counts[key]} {category_label(key, profile)}"
            text = str(counts[key]) if css_class == "pml-report-bar" else ""
            segments.append(f'<span style="flex:{counts[key]} 1 0;background:{bg};color:{fg}" '
                            f'title="{html.escape(label)}">{text}</span>')
    described = "; ".join(f"{counts[k]} {category_label(k, profile)}" for k, _, _ in CATEGORIES if counts.get(k))
    return f'<div class="{css_class}" role="img" aria-label="{html.escape(described)}">{"".join(segments)}</div>'


#: The dashboard's styles, scoped to ``.pml-report``. Fixed colours: in dark mode pydata-sphinx-theme shows an HTML
#: output on a light background, so the theme's dark-mode text colours would not read there.
STYLE = """<style>
.pml-report{--pml-muted:#59636e;--pml-rule:#d1d9e0;--pml-link:var(--pst-color-link,#0550ae);
  font-size:0.95rem;line-height:1.45;max-width:100%;overflow-wrap:anywhere}
html[data-theme=dark] .pml-report{--pml-muted:#32383f;--pml-rule:#8c959f;--pml-link:#0550ae}
.pml-report a{color:var(--pml-link)}
.pml-report code{font-size:0.85em;white-space:nowrap;color:inherit}
.pml-report-note{font-weight:600}
.pml-report-headline{font-size:1.15rem;margin:0.2rem 0 0.5rem}
.pml-report-big{font-size:2rem;font-weight:700;margin-right:0.15em}
.pml-report-bar,.pml-report-minibar{display:flex;width:100%;border-radius:6px;overflow:hidden}
.pml-report-bar{height:1.6rem}
.pml-report-bar span{display:flex;align-items:center;justify-content:center;font-size:0.8rem;font-weight:600;
  min-width:1.4rem;overflow:hidden}
.pml-report-legend{list-style:none;padding:0;margin:0.5rem 0 1rem;display:flex;flex-wrap:wrap;gap:0.3rem 1.2rem}
.pml-report-legend li{margin:0;display:flex;align-items:center;gap:0.35em}
.pml-report-swatch{display:inline-block;width:0.85em;height:0.85em;border-radius:3px}
.pml-report-count{font-weight:700}
.pml-report-overview{list-style:none;padding:0;margin:0 0 1rem;font-size:0.9rem}
.pml-report-overview li{display:grid;grid-template-columns:minmax(0,15rem) 8rem minmax(0,1fr);gap:0 0.8rem;
  align-items:center;margin:0;padding:0.15rem 0;border-top:1px solid var(--pml-rule)}
.pml-report-overview li>span{color:var(--pml-muted);font-size:0.85rem}
.pml-report-overview a{text-decoration:none}
.pml-report-chapter{margin:1.2rem 0 1.6rem}
.pml-report h3.pml-report-title{font-size:1.1rem;margin:0 0 0.3rem}
.pml-report-tally{display:flex;align-items:center;gap:0.8rem;font-size:0.85rem;color:var(--pml-muted);
  margin-bottom:0.4rem}
.pml-report-minibar{width:8rem;flex:none;height:0.6rem;border-radius:3px;background:var(--pml-rule)}
.pml-report-claim{display:grid;grid-template-columns:3.4rem 9.6rem minmax(0,1fr);gap:0.1rem 0.6rem;
  align-items:start;padding:0.45rem 0;border-top:1px solid var(--pml-rule)}
.pml-report-id{font-weight:700;font-variant-numeric:tabular-nums}
.pml-report a.pml-report-id,.pml-report-title a{text-decoration:none}
.pml-report a.pml-report-id:hover,.pml-report-title a:hover{text-decoration:underline}
.pml-report-badge{display:inline-block;border-radius:999px;padding:0.05rem 0.6rem;font-size:0.78rem;
  font-weight:600;line-height:1.5;text-align:center;white-space:nowrap;max-width:100%;overflow:hidden;
  text-overflow:ellipsis;justify-self:start}
.pml-report-body{min-width:0}
.pml-report-statement{font-style:italic}
.pml-report-facts,.pml-report-inputs,.pml-report details{font-size:0.85rem;color:var(--pml-muted)}
.pml-report-indicative{font-style:italic}
.pml-report details{margin-top:0.1rem}
.pml-report summary{cursor:pointer;width:fit-content}
.pml-report details>div{padding:0.2rem 0 0.2rem 1rem}
.pml-report details.pml-report-unrun{font-size:0.95rem;color:inherit}
.pml-report details.pml-report-unrun>div{padding:0}
.pml-report-why summary{color:#9a6700;font-weight:600}
.pml-report-inputs{display:grid;grid-template-columns:3.4rem minmax(0,1fr);gap:0 0.6rem;margin:0;
  padding-top:0.35rem;border-top:1px solid var(--pml-rule)}
.pml-report-inputs ul{list-style:none;margin:0;padding:0}
.pml-report-inputs li{display:grid;grid-template-columns:9.6rem minmax(0,1fr);gap:0 0.6rem;margin:0 0 0.15rem}
.pml-report-tag{border-left:3px solid #afb8c1;padding-left:0.4rem}
.pml-report-tag-computed-here,.pml-report-tag-verified-here{border-left-color:#1a7f37}
.pml-report-tag-unverified{border-left-color:#d4a72c}
@media (max-width:640px){.pml-report-claim{grid-template-columns:3.4rem minmax(0,1fr)}
  .pml-report-overview li{grid-template-columns:minmax(0,1fr) 6rem}.pml-report-overview li>span{grid-column:1/-1}
  .pml-report-body{grid-column:1/-1}}
</style>"""
