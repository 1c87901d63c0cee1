"""The precision report of a fit: how the model was chosen, how precise it is, the float64 floor of the data and
where the remaining error most likely comes from (paper §1.2's error sources; Section 5)."""

from __future__ import annotations

import dataclasses
import math
import textwrap

import numpy as np

from pml import __version__
from pml.fitting import guide
from pml.fitting.methods import MAX_SELECTION_ROWS
from pml.fitting.transforms import IDENTITY, label


def float64_floor(y) -> float:
    """Relative RMSE left by rounding the targets to float64 (each off by up to half an ulp: an RMS of
    spacing/sqrt(12)).

    Parameters
    ----------
    y : array_like
        The targets.

    Returns
    -------
    float
        RMS(spacing(y)/sqrt(12)) / RMS(y); NaN when every target is zero.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    y_rms = float(np.sqrt(np.mean(y**2)))
    if y_rms == 0:
        return math.nan
    return float(np.sqrt(np.mean(np.spacing(np.abs(y)) ** 2 / 12.0)) / y_rms)


ERROR_SOURCES = ("precision limit", "data precision", "generalisation", "optimisation", "architecture",
                 "architecture or noise", "unknown")


def diagnose(kind: str, train: float, val: float, floor: float, data_floor: float | None = None
             ) -> tuple[str, str]:
    """Where the remaining error most likely comes from (paper §1.2's decomposition of the error).

    Parameters
    ----------
    kind : str
        The method's kind: ``"interpolant"``, ``"least-squares"`` or ``"trained"``.
    train, val : float
        Relative RMSE on the training and validation rows (``val`` NaN without validation rows).
    floor, data_floor : float, float or None
        The float64 floor of the targets (:func:`float64_floor`) and the precision they were given to, if known.

    Returns
    -------
    source : str
        One of ``ERROR_SOURCES``.
    explanation : str
        Why, and what would reduce the error.
    """
    if not math.isfinite(val) and kind == "interpolant":
        return "unknown", ("an interpolant fits its training rows exactly, and no validation row got a prediction "
                           "(validation=0, or every validation row lies outside the region the method covers): its "
                           "error cannot be judged. Hold out rows (validation > 0) or collect more data.")
    ref = val if math.isfinite(val) else train
    if not math.isfinite(ref):
        return "unknown", "no finite predictions to judge."
    if data_floor is not None and data_floor > floor:
        if ref <= 30 * data_floor:
            return "data precision", (f"the error is within {max(ref / data_floor, 1):.0f}x of the precision the "
                                      f"targets were given to ({data_floor:.1e}): the data, not the method, limit "
                                      "the fit. Give the targets with more digits (17 significant digits hold a "
                                      "float64 exactly).")
    elif ref <= 1e3 * floor:
        return "precision limit", (f"the error is within {max(ref / floor, 1):.0f}x of the float64 floor: what is "
                                   "left is rounding in float64 arithmetic (the fit's conditioning), not the method. "
                                   "Only higher-precision arithmetic would go further.")
    gap = val / train if math.isfinite(val) and train > 0 else math.inf
    if kind == "interpolant":
        return "generalisation", ("the method fits every training row exactly, so the error is the generalisation "
                                  "gap and the architecture error (paper §2): the interpolant departs from the "
                                  "target between the data points. More data, or a higher order for a smooth "
                                  "target, reduce it.")
    if math.isfinite(val) and gap > 10:
        cure = ("The degree or network size was already chosen for the smallest validation error, so more data is "
                "what reduces it." if kind == "least-squares" else "More data, a smaller model or fewer training "
                                                                    "steps reduce it.")
        return "generalisation", (f"validation error is {gap:.0f}x the training error: the model fits the "
                                  f"training rows better than new points (many degrees of freedom for the data). "
                                  f"{cure}")
    if kind == "trained":
        return "optimisation", ("training and validation errors are close and far above the float64 floor: the "
                                "optimiser has not found the best parameters (paper §4: optimisation error is a "
                                "key driver for networks). More iterations, second-order training and boosting "
                                "(method='lm-multistage') or a least-squares method ('poly', 'readout') help.")
    return "architecture or noise", ("the coefficients are the exact least-squares optimum (no optimisation "
                                     "error) and training and validation errors are close: the model class cannot "
                                     "represent the target more precisely with this much data (architecture "
                                     "error), or the targets carry noise at this level. More data allow a higher "
                                     "degree or more units; noise cannot be fitted away.")


def _e(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.2e}"


@dataclasses.dataclass(frozen=True)
class PrecisionReport:
    """How a model was chosen and how precise it is; ``str(report)`` is the text ``pml fit`` prints.

    Errors are relative RMSE (paper Eq. 1): RMSE / RMS(y). Made by :func:`fit`; every field is also in the model file.

    Parameters
    ----------
    method, requested, kind, rule, reason : str
        The method fitted, the one asked for, its kind, the guide's rule (``auto`` only, else None) and why.
    promise : float or None
        The relative RMSE the chart promises for the rule (``auto`` only).
    candidates : tuple of dict
        ``auto``: every candidate with its inner-validation error or why it was skipped.
    details : str
        What the method chose (degree, order, units, stages).
    n_rows, n_train, n_validation, dim : int
        Rows in all, for training and for validation; number of inputs.
    input_names, target_name : tuple of str, str
        The names of the inputs and of the target.
    y_rms, train_rel_rmse, val_rel_rmse, val_max_rel_err : float
        RMS of the targets; relative RMSE on the training and validation rows (NaN without a validation split); the
        largest validation error over RMS(y).
    n_val_nonfinite : int
        Validation rows without a finite prediction (simplex: outside the convex hull).
    float64_floor, data_floor : float, float or None
        See :func:`float64_floor`; the precision the targets were given to (rounded decimals), if known.
    error_source, diagnosis : str
        See :func:`diagnose`.
    refit : bool
        Whether the model was refitted on all rows.
    n_params, seconds, seed, pml_version : int, float, int, str
        Fitted numbers, wall time, seed and the pml version of the fit.
    transform : str
        What the method fitted against what (:mod:`pml.fitting.transforms`), e.g. ``"log y ~ log x"``.
    time_limit : float or None
        The time limit of the fit in seconds.
    sampling : str or None
        What the time limit made the fit subsample or leave out, in words.
    """

    method: str
    requested: str
    kind: str
    rule: str | None  # the guide's rule (auto only)
    reason: str
    promise: float | None  # relative RMSE the chart promises for the rule (auto only)
    candidates: tuple[dict, ...]  # auto: every candidate with its inner-validation error or why it was skipped
    details: str
    n_rows: int
    n_train: int
    n_validation: int
    dim: int
    input_names: tuple[str, ...]
    target_name: str
    y_rms: float
    train_rel_rmse: float
    val_rel_rmse: float  # NaN without a validation split
    val_max_rel_err: float  # max |error| / RMS(y) on the validation rows
    n_val_nonfinite: int  # validation rows without a finite prediction (simplex: outside the convex hull)
    float64_floor: float
    data_floor: float | None  # precision the targets were given to (e.g. rounded decimals in a CSV), if known
    error_source: str
    diagnosis: str
    refit: bool
    n_params: int
    seconds: float
    seed: int
    pml_version: str = __version__
    transform: str = "y ~ x"
    time_limit: float | None = None
    sampling: str | None = None

    @property
    def promise_met(self) -> bool | None:
        return guide.promise_met(self.val_rel_rmse, self.promise)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["candidates"] = [dict(c) for c in self.candidates]
        out["input_names"] = list(self.input_names)
        out["promise_met"] = self.promise_met
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PrecisionReport":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["candidates"] = tuple(kw.get("candidates", ()))
        kw["input_names"] = tuple(kw.get("input_names", ()))
        return cls(**kw)

    def __str__(self) -> str:
        w = textwrap.TextWrapper(width=100, initial_indent="", subsequent_indent=" " * 17)

        def line(label: str, text: str) -> str:
            return w.fill(f"  {label:<14} {text}")

        inputs = ", ".join(self.input_names)
        out = [f"pml precision report (pml {self.pml_version})",
               line("data", f"{self.n_rows} rows: {self.n_train} to fit, {self.n_validation} held out for "
                            f"validation; d = {self.dim} inputs ({inputs}) -> target {self.target_name}; "
                            f"RMS(target) = {self.y_rms:.3e}"),
               line("method", f"{self.method} ({self.kind})" + (
                   f" fitted to {self.transform} (predictions of {self.target_name})" if self.transform != IDENTITY.name
                   else "") + (f", chosen by rule {self.rule!r} of the User's Guide" if self.rule else
                               ", as requested")),
               line("why", self.reason)]
        if self.candidates:
            parts, skipped = [], {}  # skipped: reason -> names (one reason often skips several candidates)
            for c in self.candidates:
                transform = c.get("transform", IDENTITY.name)
                name = label(c["method"], transform)
                if c.get("skipped"):
                    skipped.setdefault(c["skipped"], []).append(name)
                else:
                    secs = f" in {c['seconds']:.0f} s" if c.get("seconds") is not None else ""
                    parts.append(f"{name} {_e(c['inner_rel_rmse'])}{secs}" + (
                        " <- chosen: the lowest validation error" if (c["method"], transform) == (
                            self.method, self.transform) else ""))
            parts += [f"{', '.join(names)} skipped ({why})" for why, names in skipped.items()]
            budgeted = any(c.get("seconds") is not None for c in self.candidates)  # d >= 3: pml.fitting.budget
            sub = f" (candidates fitted to at most {MAX_SELECTION_ROWS} rows)" if (
                self.n_train > MAX_SELECTION_ROWS and not budgeted) else ""
            out.append(line("candidates", f"relative RMSE on the inner validation split{sub}: " + "; ".join(parts)))
        out.append(line("model", self.details + f" ({self.n_params} numbers, {self.seconds:.1f} s)"))
        if self.time_limit is not None:
            out.append(line("time limit", f"{self.time_limit:g} s; the fit took {self.seconds:.1f} s" + (
                f"; {self.sampling}" if self.sampling else "")))
        out.append(line("train", f"relative RMSE {_e(self.train_rel_rmse)}"))
        val = f"relative RMSE {_e(self.val_rel_rmse)}, max |error| / RMS(target) {_e(self.val_max_rel_err)}"
        if self.n_val_nonfinite:
            val += f"; {self.n_val_nonfinite} rows got no prediction (outside the training data's convex hull)"
        out.append(line("validation", val if self.n_validation else "none (validation=0)"))
        ratio = self.val_rel_rmse / self.float64_floor if math.isfinite(self.val_rel_rmse) else math.nan
        floor = f"{self.float64_floor:.2e} (relative RMSE of rounding the targets to float64)"
        if math.isfinite(ratio):
            floor += f"; validation error = {ratio:.3g} x floor"
        out.append(line("float64 floor", floor))
        if self.data_floor is not None:
            out.append(line("data floor", f"{self.data_floor:.2e} (the targets' own rounding)"))
        if self.promise is not None:
            verdict = {True: "kept", False: "NOT kept", None: "not checked"}[self.promise_met]
            out.append(line("promise", f"the chart promises validation relative RMSE <= {self.promise:.0e} for smooth "
                                       f"targets at full precision: {verdict}"))
        elif self.rule:
            out.append(line("promise", "none for this region of the chart (it depends on the target's structure)"))
        out.append(line("error source", f"{self.error_source}: {self.diagnosis}"))
        if self.refit:
            out.append(line("note", "the model was refit on all rows after validation; the errors above describe "
                                    "the fit without the validation rows"))
        return "\n".join(out)
