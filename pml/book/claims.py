"""Paper claims and their verdicts.

Every claim the book checks is declared once, in ``pml/claimsets/<chapter>.yaml``: its id ``C<section>.<n>``, the chapter that
measures it, the paper's words, the quantity, the paper's value, the check and the profiles where the check is
meaningful (a small ``smoke`` run cannot test a scaling law). A chapter measures the quantity and calls
:func:`report`, which computes each verdict from the measured value and writes ``_build/claims/<profile>/
<chapter>.json``. ``pml claims`` recomputes the verdicts from those files; nothing is ever typed in.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from pml import paths
from pml.book import context
from pml.experiments.tables import Table

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_CHECKED = "not checked at this profile"
MISSING = "missing (chapter not run at this profile)"
NOT_COMPUTED = "not computed"  # a stored build (pml run/book --stored) lacks tasks the claim depends on
CHECK_KINDS = ("between", "at_least", "at_most", "close")


@dataclasses.dataclass(frozen=True)
class Check:
    """The test a measured value must pass.

    kinds: ``between`` (low <= x <= high), ``at_least`` (x >= low), ``at_most`` (x <= high),
    ``close`` (|x - target| <= atol).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    target: float | None = None
    atol: float | None = None

    def __post_init__(self):
        needs = {"between": ("low", "high"), "at_least": ("low",), "at_most": ("high",), "close": ("target", "atol")}
        if self.kind not in needs:
            raise ValueError(f"unknown check kind {self.kind!r}; valid: {list(CHECK_KINDS)}")
        missing = [name for name in needs[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"check {self.kind!r} needs {missing}")

    def passes(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.kind == "between":
            return self.low <= value <= self.high
        if self.kind == "at_least":
            return value >= self.low
        if self.kind == "at_most":
            return value <= self.high
        return abs(value - self.target) <= self.atol

    def describe(self) -> str:
        if self.kind == "between":
            return f"{self.low:.3g} <= x <= {self.high:.3g}"
        if self.kind == "at_least":
            return f"x >= {self.low:.3g}"
        if self.kind == "at_most":
            return f"x <= {self.high:.3g}"
        return f"|x - ({self.target:.3g})| <= {self.atol:.3g}"


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    chapter: str
    statement: str  # the paper's words
    quantity: str  # what the chapter measures
    paper: str  # the paper's value, as the paper (or its code) gives it
    check: Check
    profiles: tuple[str, ...]  # where the check is meaningful
    deviation: str | None = None  # a known, explained deviation: reported, but does not fail `make verify`
    steps: tuple[str, ...] | None = None  # the chapter steps whose results the quantity uses (None: not declared)


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: Claim
    measured: float | None
    verdict: str
    missing_cpu_hours: float | None = None  # NOT_COMPUTED: cost-model CPU-hours of the tasks it lacks
    profile: str | None = None  # NOT_COMPUTED: the profile whose results it lacks

    @property
    def text(self) -> str:
        """The verdict as the tables show it: ``not computed at paper (1,700 CPU-hours missing)`` for a claim
        whose tasks a stored build lacks, the verdict itself otherwise."""
        if self.verdict != NOT_COMPUTED:
            return self.verdict
        from pml.engine.partial import hours_text

        where = f" at {self.profile}" if self.profile else ""
        hours = f" ({hours_text(self.missing_cpu_hours)} missing)" if self.missing_cpu_hours is not None else ""
        return f"{NOT_COMPUTED}{where}{hours}"

    @property
    def known_deviation(self) -> bool:
        """True when the claim is not reproduced here and its claim set explains why (a known deviation)."""
        return self.claim.deviation is not None and self.verdict == NOT_REPRODUCED

    @property
    def ok(self) -> bool:
        """True unless the claim is checkable here and failed without an explained deviation, or is missing."""
        if self.verdict == MISSING:
            return self.claim.deviation is not None
        return self.verdict != NOT_REPRODUCED or self.claim.deviation is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.claim.id,
            "chapter": self.claim.chapter,
            "statement": self.claim.statement,
            "quantity": self.claim.quantity,
            "paper": self.claim.paper,
            "check": self.claim.check.describe(),
            "profiles": list(self.claim.profiles),
            "measured": self.measured,
            "verdict": self.verdict,
            "deviation": self.claim.deviation,
            "missing_cpu_hours": self.missing_cpu_hours,
        }


def anchor(claim_id: str) -> str:
    """The HTML ``id`` of a claim's row in its chapter's claims table: ``claim-C2-6`` for ``C2.6`` (a dot in an id
    would need escaping in a CSS selector)."""
    return "claim-" + claim_id.replace(".", "-")


def registry_dir() -> Path:
    return Path(__file__).with_name("claimsets")


@lru_cache(maxsize=None)
def _registry_cached(files: tuple[tuple[str, float], ...]) -> dict[str, Claim]:
    claims: dict[str, Claim] = {}
    for path, _mtime in files:
        for entry in yaml.safe_load(Path(path).read_text()) or []:
            entry = dict(entry)
            check = Check(**entry.pop("check"))
            steps = entry.pop("steps", None)
            claim = Claim(check=check, profiles=tuple(entry.pop("profiles")),
                          steps=None if steps is None else tuple(steps), **entry)
            if claim.id in claims:
                raise ValueError(f"claim {claim.id} is declared twice ({Path(path).name})")
            if claim.chapter != Path(path).stem:
                raise ValueError(f"claim {claim.id} in {Path(path).name} names chapter {claim.chapter!r}")
            claims[claim.id] = claim
    return claims


def registry() -> dict[str, Claim]:
    """All declared claims, by id: one YAML file per chapter, ``pml/claimsets/<chapter>.yaml``."""
    files = sorted(registry_dir().glob("*.yaml"))
    return _registry_cached(tuple((str(p), p.stat().st_mtime) for p in files))


def get(claim_id: str) -> Claim:
    claims = registry()
    if claim_id not in claims:
        raise KeyError(f"unknown claim {claim_id!r}; declared: {sorted(claims)}")
    return claims[claim_id]


def for_chapter(chapter: str) -> list[Claim]:
    return [c for c in registry().values() if c.chapter == chapter]


def judge(claim: Claim, measured: float | None, profile: str, missing_cpu_hours: float | None = None) -> Verdict:
    """The verdict for one measured value at one profile; ``missing_cpu_hours`` (not None): a stored build lacks
    tasks the claim depends on, worth that many CPU-hours, so it is :data:`NOT_COMPUTED`, not judged."""
    if missing_cpu_hours is not None:
        return Verdict(claim, None, NOT_COMPUTED, float(missing_cpu_hours), profile)
    if measured is None:
        return Verdict(claim, None, MISSING)
    measured = float(measured)
    if profile not in claim.profiles:
        return Verdict(claim, measured, NOT_CHECKED)
    return Verdict(claim, measured, REPRODUCED if claim.check.passes(measured) else NOT_REPRODUCED)


def _atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON through a temporary file (a reader never sees half a file); mode as ``open()``'s."""
    from pml.engine.store import _atomic_write

    _atomic_write(path, json.dumps(payload, indent=2, allow_nan=True).encode())


def report(chapter: str, profile: str, measured: Mapping[str, float], parameters: Mapping[str, Any] | None = None):
    """Judge a chapter's claims, write ``_build/claims/<profile>/<chapter>.json`` and return a table to display.

    ``measured`` maps every claim id declared for ``chapter`` to the value the chapter measured; a missing or
    extra id is an error, so a chapter cannot silently skip a claim. Run by the book runner, the file goes to the
    run's staging folder first (see :func:`pml.paths.output_dir`) and records every parameter value of the run,
    the command-line overrides and the execution settings; with overrides, the table says so. In a stored build
    (``pml run/book --stored``) a value may be a :class:`pml.engine.NotComputed` (so may ``measured`` itself), and a
    claim whose steps the store lacks is :data:`NOT_COMPUTED` whatever its value (:mod:`pml.book.coverage`).
    """
    declared = {c.id for c in for_chapter(chapter)}
    if not declared:
        raise ValueError(f"no claims are declared for chapter {chapter!r} in pml/claimsets/{chapter}.yaml")
    measured = _every_claim_missing(measured, declared)
    missing, extra = sorted(declared - set(measured)), sorted(set(measured) - declared)
    if missing or extra:
        raise ValueError(f"chapter {chapter!r}: measured values missing for {missing}, unknown ids {extra}")
    verdicts = []
    for cid in sorted(declared, key=_id_key):
        value, missing_hours = _measured_or_missing(get(cid), measured[cid])
        verdicts.append(judge(get(cid), value, profile, missing_hours))
    run = context.current()
    payload = {
        "chapter": chapter,
        "profile": profile,
        "run": run.run or profile,
        "overrides": context.plain(run.overrides),
        "parameters": context.plain(run.parameters or dict(parameters or {})),
        "execution": run.execution(),
        "measured": {v.claim.id: v.measured for v in verdicts},
        "verdicts": [v.to_dict() for v in verdicts],
        "not_computed": {v.claim.id: v.missing_cpu_hours for v in verdicts if v.verdict == NOT_COMPUTED},
        "provenance": inputs_provenance(chapter, profile, [v.claim for v in verdicts]),
    }
    _atomic_write_json(paths.output_dir("claims", profile) / f"{chapter}.json", payload)
    note = f"with overrides: {context.describe_overrides(run.overrides)}" if run.overrides else None
    table = ClaimTable(verdicts, note=note)
    table.inputs = {cid: _inputs_cell(info) for cid, info in payload["provenance"]["claims"].items()}
    return table


def _every_claim_missing(measured: Any, declared: set[str]) -> Any:
    """``measured`` itself, or, when it is a :class:`pml.engine.NotComputed` (the claim values of a step a stored
    build lacks), that for every declared claim."""
    from pml.engine.partial import NotComputed

    return {cid: measured for cid in declared} if isinstance(measured, NotComputed) else measured


def _measured_or_missing(claim: Claim, value: Any) -> tuple[float | None, float | None]:
    """(measured value, None), or (None, CPU-hours missing) when a stored build lacks tasks of the claim's steps
    (:func:`pml.book.coverage.missing_hours`; every step of its chapter when it declares none) or the value is
    a :class:`pml.engine.NotComputed`."""
    from pml.book import coverage
    from pml.engine.partial import NotComputed

    hours = coverage.missing_hours(claim.chapter, claim.steps)
    if hours is not None:
        return None, hours
    if isinstance(value, NotComputed):
        return None, value.missing_cpu_hours
    return _as_float(value), None


def runs(profile: str, chapters: list[str] | None = None, run: str | None = None) -> dict[str, dict[str, Any]]:
    """chapter -> what its claims file records about the run: ``run``, ``overrides``, ``parameters`` and
    ``execution`` (``run``: a run name such as ``ci+n_test=200``; default the profile itself)."""
    folder = paths.claims_dir(run or profile)
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if chapters is not None and path.stem not in chapters:
            continue
        payload = json.loads(path.read_text())
        out[path.stem] = {key: payload.get(key) for key in ("run", "overrides", "parameters", "execution")}
        out[path.stem]["overrides"] = out[path.stem]["overrides"] or {}
    return out


def _as_float(value) -> float:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise TypeError(f"a measured value must be a number, got {type(value).__name__}: {context.show(value)}")
    return float(value)


def _id_key(claim_id: str) -> tuple[int, int]:
    section, _, n = claim_id[1:].partition(".")
    return int(section), int(n)


def collect(profile: str, chapters: list[str] | None = None, run: str | None = None) -> list[Verdict]:
    """Verdicts for every declared claim at ``profile``, recomputed from the measured values on disk (``run``: those
    of a run with overrides, such as ``ci+n_test=200``, judged by the profile's checks)."""
    measured_by_chapter: dict[str, dict[str, float]] = {}
    not_computed: dict[str, float] = {}  # claim id -> CPU-hours its stored build lacked
    for claim in registry().values():
        if chapters is not None and claim.chapter not in chapters:
            continue
        if claim.chapter not in measured_by_chapter:
            path = paths.claims_dir(run or profile) / f"{claim.chapter}.json"
            payload = json.loads(path.read_text()) if path.exists() else {}
            measured_by_chapter[claim.chapter] = payload.get("measured", {})
            not_computed.update(_not_computed_of(payload))
    out = []
    for claim in sorted(registry().values(), key=lambda c: _id_key(c.id)):
        if claim.chapter in measured_by_chapter:
            out.append(judge(claim, measured_by_chapter[claim.chapter].get(claim.id), profile,
                             not_computed.get(claim.id)))
    return out


def _not_computed_of(payload: Mapping[str, Any]) -> dict[str, float]:
    """claim id -> missing CPU-hours, as a claims file records its not-computed claims (numbers only: data)."""
    recorded = payload.get("not_computed")
    if not isinstance(recorded, dict):
        return {}
    return {str(k): float(v) for k, v in recorded.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


# ---------------------------------------------------------------------------------------------------------------
# provenance of each claim's inputs: computed here, verified here, or taken unverified from an archive
# ---------------------------------------------------------------------------------------------------------------

INPUTS_COLUMN = "inputs"
CHAPTER_BASIS = "all steps the chapter ran"  # a claim that declares no steps: its chapter's steps stand for it
NOT_RECORDED = "not recorded (claims file written before provenance records: rerun the chapter)"
INPUTS_LEGEND = ("inputs: where the task results behind each claim came from: computed here, verified here (taken "
                 "from a results archive and matched by a recomputation here), or from archive X (unverified); "
                 "[chapter's steps]: the claim declares no steps, so every step its chapter ran counts")


def inputs_provenance(chapter: str, profile: str, claims_: list[Claim]) -> dict[str, Any]:
    """Where the results behind each claim came from, from the steps this process ran
    (:func:`pml.engine.provenance.used_steps`).

    Parameters
    ----------
    chapter : str
        The chapter whose claims these are.
    profile : str
        Its profile (to name the steps as the chapter built them).
    claims_ : list of Claim
        The chapter's claims.

    Returns
    -------
    dict
        ``{"steps": {step: summary}, "claims": {claim id: summary + "steps" and "basis"}}``; a summary is
        :meth:`pml.engine.provenance.Summary.to_dict`. A claim that declares ``steps`` (in its claim set) gets those
        steps' tasks, basis ``"the claim's steps"``; otherwise, or when one of its steps did not run, every step the
        chapter ran, basis :data:`CHAPTER_BASIS`.
    """
    from pml.engine import partial, provenance

    steps: dict[str, provenance.StepUse] = {}
    for use in provenance.used_steps():
        name = partial.step_name(use.sweep)  # the names the chapter gave its steps (its coverage line), else the type
        if name in steps:  # two sweeps of one type that are not the chapter's named steps
            name = f"{name}#{sum(1 for n in steps if n.split('#')[0] == name) + 1}"
        steps[name] = use

    def combined(names: list[str]) -> dict[str, Any]:
        sources = {key: src for n in names for key, src in steps[n].sources.items()}
        out = provenance.Summary()
        for src in sources.values():
            out.add(src)
        return out.to_dict()

    by_claim = {}
    for claim in claims_:
        if claim.steps and all(s in steps for s in claim.steps):
            names, basis = list(claim.steps), "the claim's steps"
        else:
            names, basis = list(steps), CHAPTER_BASIS
        by_claim[claim.id] = {"steps": names, "basis": basis, **combined(names)}
    return {"steps": {name: use.summary().to_dict() for name, use in steps.items()}, "claims": by_claim}


def _inputs_cell(info: Mapping[str, Any] | None) -> str:
    """One claim's provenance for a table cell: the summary's label, marked when it stands for the chapter's steps."""
    from pml.engine.provenance import Summary

    if info is None:
        return NOT_RECORDED
    try:
        label = Summary.from_dict(info).label()
    except ValueError:
        return NOT_RECORDED
    return label + (" [chapter's steps]" if info.get("basis") == CHAPTER_BASIS else "")


def provenance_of(profile: str, chapters: list[str] | None = None, run: str | None = None) -> dict[str, dict]:
    """claim id -> where its inputs came from, as the claims files of ``profile`` (or ``run``) record it
    (:func:`inputs_provenance`); claims whose file records none map to ``{}``."""
    out: dict[str, dict] = {}
    folder = paths.claims_dir(run or profile)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if chapters is not None and path.stem not in chapters:
            continue
        payload = json.loads(path.read_text())
        recorded = (payload.get("provenance") or {}).get("claims") or {}
        for cid in payload.get("measured") or {}:
            out[cid] = recorded.get(cid) or {}
    return out


def with_inputs(table: "ClaimTable", profile: str, run: str | None = None) -> "ClaimTable":
    """``table`` with its :data:`INPUTS_COLUMN` filled from the claims files (:func:`provenance_of`); returns it."""
    recorded = provenance_of(profile, run=run)
    table.inputs = {v.claim.id: (_inputs_cell(recorded[v.claim.id] or None) if v.claim.id in recorded else "-")
                    for v in table.verdicts}
    return table


def inputs_summary(profile: str, run: str | None = None) -> str:
    """One sentence: how many claims of ``profile`` were judged on inputs computed here, verified here, or taken
    unverified from archives (named)."""
    from pml.engine.provenance import Summary

    counts = {"computed here": 0, "verified here": 0, "unverified": 0, "not recorded": 0}
    archives: set[str] = set()
    recorded = provenance_of(profile, run=run)
    for info in recorded.values():
        try:
            summary = Summary.from_dict(info) if info else None
        except ValueError:
            summary = None
        if summary is None:
            counts["not recorded"] += 1
            continue
        counts[summary.kind()] += 1
        archives |= {n for n, c in summary.archives.items() if c["unverified"]}
    if not recorded:
        return "No chapter has recorded where its claims' inputs came from."
    parts = [f"{counts['computed here']} on results computed here", f"{counts['verified here']} on results "
             "verified here (taken from an archive and matched by a recomputation here)"]
    parts.append(f"{counts['unverified']} on unverified results from "
                 + (f"archive{'s' if len(archives) > 1 else ''} {', '.join(sorted(archives))}" if archives
                    else "archives"))
    if counts["not recorded"]:
        parts.append(f"{counts['not recorded']} without a record (claims files from before provenance records)")
    return f"Of {len(recorded)} claims, " + "; ".join(parts) + "."


def _with_row_ids(table_html: str, ids: list[str]) -> str:
    """``table_html`` (:meth:`pml.experiments.tables.Table.html`) with ``id="<ids[i]>"`` on body row i: the
    reproduction report links to each claim's row. The cells are escaped, so every ``<tr>`` in the body starts a row."""
    head, tbody, body = table_html.partition("<tbody>")
    rows = body.split("<tr>")
    if len(rows) - 1 != len(ids):
        raise ValueError(f"{len(ids)} row ids for a table of {len(rows) - 1} rows")
    return head + tbody + rows[0] + "".join(f'<tr id="{html.escape(i)}">{row}' for i, row in zip(ids, rows[1:]))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


class ClaimTable:
    """A list of verdicts that renders as a table in a notebook (HTML) and as text."""

    columns = ("claim", "paper says", "paper", "check", "measured", "verdict")

    def __init__(self, verdicts: list[Verdict], note: str | None = None):
        self.verdicts = list(verdicts)
        self.note = note  # how the run differs from its profile ("with overrides: n_test=200"), shown above the table
        self.inputs: dict[str, str] | None = None  # claim id -> where its inputs came from (see with_inputs)

    def rows(self) -> list[tuple[str, ...]]:
        rows = []
        for v in self.verdicts:
            verdict = v.text + (" (known deviation)" if v.known_deviation else "")
            rows.append((v.claim.id, v.claim.statement, v.claim.paper, v.claim.check.describe(), _fmt(v.measured), verdict))
        return rows

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def table(self) -> Table:
        """The verdicts as a :class:`pml.experiments.tables.Table` (HTML class ``pml-claims``)."""
        if self.inputs is None:
            return Table(self.columns, self.rows(), css_class="pml-claims")
        return Table((*self.columns, INPUTS_COLUMN), self._rows_with_inputs(), css_class="pml-claims")

    def _rows_with_inputs(self) -> list[tuple[str, ...]]:
        """:meth:`rows` with the provenance of each claim's inputs as a last column."""
        return [(*row, (self.inputs or {}).get(v.claim.id, "-")) for v, row in zip(self.verdicts, self.rows())]

    def _repr_html_(self) -> str:
        note = f"<p><strong>{html.escape(self.note)}</strong></p>" if self.note else ""
        legend = f"<p><small>{html.escape(INPUTS_LEGEND)}</small></p>" if self.inputs is not None else ""
        return note + _with_row_ids(self.table().html(), [anchor(v.claim.id) for v in self.verdicts]) + legend

    def __str__(self) -> str:
        lines = [self.note] if self.note else []
        rows = self.rows()
        width = max([28, *(len(row[5]) for row in rows)])  # the verdict column, as wide as its longest verdict
        for v, row in zip(self.verdicts, rows):
            lines.append(f"{row[0]:<6} {row[5]:<{width}} measured {row[4]:<10} check {row[3]}  (paper: {row[2]})")
            lines.append(f"       {v.claim.statement}")
            if v.known_deviation:
                lines.append(f"       known deviation: {v.claim.deviation}")
            if self.inputs is not None:
                lines.append(f"       inputs: {self.inputs.get(v.claim.id, '-')}")
        if self.inputs is not None:
            lines.append(f"({INPUTS_LEGEND})")
        return "\n".join(lines)

    __repr__ = __str__
