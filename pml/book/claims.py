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


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: Claim
    measured: float | None
    verdict: str

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
        }


def registry_dir() -> Path:
    return Path(__file__).with_name("claimsets")


@lru_cache(maxsize=None)
def _registry_cached(files: tuple[tuple[str, float], ...]) -> dict[str, Claim]:
    claims: dict[str, Claim] = {}
    for path, _mtime in files:
        for entry in yaml.safe_load(Path(path).read_text()) or []:
            entry = dict(entry)
            check = Check(**entry.pop("check"))
            claim = Claim(check=check, profiles=tuple(entry.pop("profiles")), **entry)
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


def judge(claim: Claim, measured: float | None, profile: str) -> Verdict:
    """The verdict for one measured value at one profile."""
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
    the command-line overrides and the execution settings; with overrides, the table says so.
    """
    declared = {c.id for c in for_chapter(chapter)}
    if not declared:
        raise ValueError(f"no claims are declared for chapter {chapter!r} in pml/claimsets/{chapter}.yaml")
    missing, extra = sorted(declared - set(measured)), sorted(set(measured) - declared)
    if missing or extra:
        raise ValueError(f"chapter {chapter!r}: measured values missing for {missing}, unknown ids {extra}")
    verdicts = [judge(get(cid), _as_float(measured[cid]), profile) for cid in sorted(declared, key=_id_key)]
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
    }
    _atomic_write_json(paths.output_dir("claims", profile) / f"{chapter}.json", payload)
    note = f"with overrides: {context.describe_overrides(run.overrides)}" if run.overrides else None
    return ClaimTable(verdicts, note=note)


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
    for claim in registry().values():
        if chapters is not None and claim.chapter not in chapters:
            continue
        if claim.chapter not in measured_by_chapter:
            path = paths.claims_dir(run or profile) / f"{claim.chapter}.json"
            measured_by_chapter[claim.chapter] = json.loads(path.read_text())["measured"] if path.exists() else {}
    out = []
    for claim in sorted(registry().values(), key=lambda c: _id_key(c.id)):
        if claim.chapter in measured_by_chapter:
            out.append(judge(claim, measured_by_chapter[claim.chapter].get(claim.id), profile))
    return out


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

    def rows(self) -> list[tuple[str, ...]]:
        rows = []
        for v in self.verdicts:
            verdict = v.verdict + (" (known deviation)" if v.claim.deviation and v.verdict == NOT_REPRODUCED else "")
            rows.append((v.claim.id, v.claim.statement, v.claim.paper, v.claim.check.describe(), _fmt(v.measured), verdict))
        return rows

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def table(self) -> Table:
        """The verdicts as a :class:`pml.experiments.tables.Table` (HTML class ``pml-claims``)."""
        return Table(self.columns, self.rows(), css_class="pml-claims")

    def _repr_html_(self) -> str:
        note = f"<p><strong>{html.escape(self.note)}</strong></p>" if self.note else ""
        return note + self.table().html()

    def __str__(self) -> str:
        lines = [self.note] if self.note else []
        for v, row in zip(self.verdicts, self.rows()):
            lines.append(f"{row[0]:<6} {row[5]:<40} measured {row[4]:<10} check {row[3]}  (paper: {row[2]})")
            lines.append(f"       {v.claim.statement}")
            if v.claim.deviation and v.verdict == NOT_REPRODUCED:
                lines.append(f"       known deviation: {v.claim.deviation}")
        return "\n".join(lines)

    __repr__ = __str__
