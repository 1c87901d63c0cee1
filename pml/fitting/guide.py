"""The User's Guide to Precision (paper §5, Figure 10) as data: which approximation for which problem.

``RULES`` is the chart, written once: an ordered list of :class:`Rule` (conditions on the input dimension ``d``, the
number of rows ``n`` and smoothness; the methods; the promised relative RMSE; the reason). :func:`choose` applies it
(``pml.fit(X, y, method="auto")``); :func:`chart` gives the regions Figure 10 draws.

How the paper's words map onto ``pml`` methods (measured: ``tests/fitting/test_guide.py``, ``pml bench fit``): "spline
interpolation ... high enough order" (d <= 2) is ``poly``, one global polynomial of validated degree (the one-piece
limit of a spline; scattered 2D data have no grid for splines), and ``spline`` in 1D; "networks with smooth activations
... possibly with less data" is ``readout``, whose output layer is solved exactly (the paper's LM-trained boosted
networks, ``lm-multistage``, were slower and less precise on the same data, so ``auto`` does not pick them); for d >= 3
no single method wins, so ``auto`` tries ``poly`` (under every transform the data admit, :mod:`pml.fitting.transforms`),
``kernel``, ``readout`` and ``deep-lm`` within its time limit and keeps the best on an inner validation split.
Non-smooth targets get simplex interpolation (§2), ``spline`` in 1D, ReLU networks beyond d = 6.

The promises hold for smooth targets at full float64 precision, calibrated on the targets of chapters 1-4 (worst of 5
seeds); none is made for d >= 3, very few rows or non-smooth targets: there the report measures the error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

__all__ = ["Choice", "RULES", "Rule", "chart", "choose", "min_rows", "promise_met", "rules_table"]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One box of the chart (Figure 10): ``d_min <= d <= d_max`` and ``n_min <= n < n_max``, smooth or not."""

    key: str
    d_min: int
    d_max: int | None
    n_min: int
    n_max: int | None
    smooth: bool
    methods: tuple[str, ...]  # candidates; auto keeps the best on an inner validation split (first = primary)
    promise: float | None  # relative RMSE on held-out rows the chart promises (None: no promise)
    label: str  # short text for the chart
    reason: str  # why, in the paper's terms and ours

    def matches(self, d: int, n: int, smooth: bool = True) -> bool:
        return (bool(smooth) == self.smooth and self.d_min <= d and (self.d_max is None or d <= self.d_max)
                and self.n_min <= n and (self.n_max is None or n < self.n_max))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_LOW_D_ENOUGH = ("Paper §5: for d <= 2 'polynomial spline interpolation can provide a fit at machine precision if you "
                 "(1) have enough data and (2) choose a high enough polynomial order'. pml fits a global polynomial "
                 "of validated degree (the one-piece, highest-order case, which needs far fewer points than splines "
                 "on analytic targets), in 1D also interpolating splines of validated order, and a smooth tanh "
                 "network with an exact least-squares output layer; the best on an inner validation split wins. "
                 "The promise assumes a target analytic well beyond the data's box: a singularity close to it (e.g. "
                 "1/c with c from 1) slows a polynomial's convergence, and the report's validation check says when "
                 "the promise is not kept.")
_LOW_D_LITTLE = ("Paper §5: 'neural networks with smooth activations may in some cases also approach machine "
                 "precision, possibly with less data, if they are trained with second-order optimizers'. With few "
                 "rows pml tries the smooth tanh network with an exactly solved output layer first, against the "
                 "validated polynomial; expect less than machine precision until the data suffice.")
_LOW_D_FEW = ("Too few rows for any promise: one period of an oscillation, or the curvature of the target, may fall "
              "between the points. pml fits the same candidates as with little data (smooth tanh network with an "
              "exactly solved output layer, validated polynomial) and measures the error; more rows are the cure.")
_HIGH_D = ("Paper §5: 'for higher-dimensional problems (d >= 3), neural networks are typically the most promising "
           "choice, since they can learn compositional modular structure'. Measured in 3-4 dimensions, no single "
           "method wins everywhere: a Gaussian-process mean with one learned length scale per input wins on "
           "oscillatory targets, a deep tanh network trained by Levenberg-Marquardt where there is compositional "
           "structure or a singular corner, a validated polynomial on rational-smooth targets; and many formulas are "
           "exact in other coordinates (a product of powers is a plane in log y against log x, a distance's square "
           "is a polynomial). So pml tries them cheapest first (polynomial, tanh network with an exactly solved "
           "output layer, kernel, deep LM network) within the time limit, the polynomial first under every transform "
           "of target and inputs the data admit and the others under its best, and keeps the one with the smallest "
           "validation error (on the target as given), stopping early at the float64 floor; no precision is "
           "promised: it depends on the target's structure (the report measures it).")
_ROUGH_1D = ("Target not smooth (kinks, steps): high orders do not pay. 1D interpolating splines of validated order "
             "(order 1 is linear interpolation); the error falls as n^-(k+1) only where the target is smooth.")
_ROUGH_LOW = ("Target not smooth: paper §2, 'linear simplex interpolation ... always fits the training points "
              "exactly, and so error comes from the generalization gap and the architecture error', scaling as n^(-2/d). "
              "Points outside the convex hull of the training inputs get no prediction (NaN).")
_ROUGH_HIGH = ("Target not smooth and d > 6 (Delaunay triangulations are out of reach): paper §2, ReLU networks "
               "'also provide a piecewise linear fit' and can scale as n^(-2/d*) with d* the arity of the task "
               "(typically 2), but Adam leaves optimisation error.")

RULES: tuple[Rule, ...] = (  # checked in order: the first rule that matches decides
    Rule(key="1d-enough", d_min=1, d_max=1, n_min=100, n_max=None, smooth=True,
         methods=("poly", "spline", "readout"), promise=1e-12,
         label="polynomial / spline\n(machine precision)", reason=_LOW_D_ENOUGH),
    Rule(key="1d-little", d_min=1, d_max=1, n_min=20, n_max=100, smooth=True,
         methods=("readout", "poly", "spline"), promise=1e-5,
         label="smooth net / polynomial", reason=_LOW_D_LITTLE),
    Rule(key="1d-few", d_min=1, d_max=1, n_min=5, n_max=20, smooth=True,
         methods=("readout", "poly", "spline"), promise=None,
         label="smooth net / polynomial", reason=_LOW_D_FEW),
    Rule(key="2d-enough", d_min=2, d_max=2, n_min=2000, n_max=None, smooth=True,
         methods=("poly", "readout"), promise=1e-9,
         label="polynomial\n(near machine precision)", reason=_LOW_D_ENOUGH),
    Rule(key="2d-little", d_min=2, d_max=2, n_min=100, n_max=2000, smooth=True,
         methods=("readout", "poly"), promise=1e-3,
         label="smooth net / polynomial", reason=_LOW_D_LITTLE),
    Rule(key="2d-few", d_min=2, d_max=2, n_min=10, n_max=100, smooth=True,
         methods=("readout", "poly"), promise=None,
         label="smooth net / polynomial", reason=_LOW_D_FEW),
    Rule(key="high-d", d_min=3, d_max=None, n_min=100, n_max=None, smooth=True,
         methods=("poly", "readout", "kernel", "deep-lm"), promise=None,
         label="neural network\n(smooth, exact readout)", reason=_HIGH_D),
    Rule(key="rough-1d", d_min=1, d_max=1, n_min=4, n_max=None, smooth=False,
         methods=("spline",), promise=None,
         label="spline (low order)", reason=_ROUGH_1D),
    Rule(key="rough-simplex", d_min=2, d_max=6, n_min=10, n_max=None, smooth=False,
         methods=("simplex",), promise=None,
         label="linear simplex\ninterpolation", reason=_ROUGH_LOW),
    Rule(key="rough-high-d", d_min=7, d_max=None, n_min=100, n_max=None, smooth=False,
         methods=("adam-relu",), promise=None,
         label="ReLU network (Adam)", reason=_ROUGH_HIGH),
)


@dataclasses.dataclass(frozen=True)
class Choice:
    """What :func:`choose` returns."""

    rule: Rule
    methods: tuple[str, ...]
    reason: str
    expected_rel_rmse: float | None

    @property
    def method(self) -> str:
        """The rule's primary method."""
        return self.methods[0]


def _check(d: int, n: int) -> tuple[int, int]:
    for value, name in ((d, "d"), (n, "n")):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if d < 1 or n < 0:
        raise ValueError(f"need d >= 1 and n >= 0, got d={d}, n={n}")
    return int(d), int(n)


def min_rows(d: int, smooth: bool = True, rules: Sequence[Rule] = RULES) -> int:
    """The fewest data rows for which some rule applies at dimension ``d`` (``auto`` refuses fewer)."""
    d, _ = _check(d, 0)
    lows = [r.n_min for r in rules if r.smooth == bool(smooth) and r.d_min <= d and (r.d_max is None or d <= r.d_max)]
    if not lows:
        raise ValueError(f"no rule covers d = {d} (smooth={smooth})")
    return min(lows)


def choose(d: int, n: int, smooth: bool = True, rules: Sequence[Rule] = RULES) -> Choice:
    """The first rule matching (d, n, smooth): the chart's answer for d inputs and n data rows."""
    d, n = _check(d, n)
    for rule in rules:
        if rule.matches(d, n, smooth):
            return Choice(rule, rule.methods, rule.reason, rule.promise)
    need = min_rows(d, smooth, rules)
    raise ValueError(f"too few rows: {n} rows with d = {d} inputs; the guide needs at least {need} rows "
                     f"({'smooth' if smooth else 'non-smooth'} target)")


def chart(smooth: bool = True, d_max: int = 8, n_max: float = 1e6, rules: Sequence[Rule] = RULES) -> list[dict]:
    """The rules as rectangles of the (d, n) plane, for drawing Figure 10."""
    regions = []
    for r in rules:
        if r.smooth != bool(smooth) or r.d_min > d_max:
            continue
        regions.append({
            "key": r.key, "d_lo": r.d_min, "d_hi": min(r.d_max if r.d_max is not None else d_max, d_max),
            "n_lo": r.n_min, "n_hi": float(r.n_max if r.n_max is not None else n_max), "label": r.label,
            "methods": r.methods, "promise": r.promise,
        })
    return regions


def _fmt(v: float | None) -> str:
    return "none" if v is None else f"{v:.0e}"


def rules_table(rules: Sequence[Rule] = RULES) -> str:
    """The rules as a plain-text table."""
    rows = [("rule", "smooth", "d", "rows n", "methods (candidates)", "promise")]
    for r in rules:
        d = f"{r.d_min}" if r.d_max == r.d_min else (f">={r.d_min}" if r.d_max is None else f"{r.d_min}-{r.d_max}")
        n = f">={r.n_min}" if r.n_max is None else f"{r.n_min}-{r.n_max - 1}"
        rows.append((r.key, "yes" if r.smooth else "no", d, n, ", ".join(r.methods), _fmt(r.promise)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def promise_met(rel_rmse: float, promise: float | None) -> bool | None:
    """Whether a measured relative RMSE keeps the chart's promise."""
    if promise is None or not math.isfinite(rel_rmse):
        return None if promise is None else False
    return bool(rel_rmse <= promise)
