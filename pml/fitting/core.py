"""Fit your own data to high precision, and learn how precise the fit is and why.

Paper: §5 "User's Guide to Precision" and Figure 10 of Michaud, Liu & Tegmark (2022). The rules that pick a method
live in :mod:`pml.fitting.guide` (one source of truth: the chart of the book is drawn from them).

Python::

    import pml
    model = pml.fit(X, y)                    # X: (n, d) floats, y: (n,) floats; method="auto" by default
    print(model.report)                      # method and why, train/validation error, float64 floor, error source
    y_new = model.predict(X_new)
    model.save("model.npz")
    model = pml.fitting.load("model.npz")

Command line (CSV with a header row, or ``.npz`` with one named 1-D array per column)::

    pml fit data.csv --target y --out model.npz          # prints the precision report
    pml predict model.npz new.csv [--out predictions.csv] # input columns + a column named after the target

What :func:`fit` does:

1. checks the data (numeric, finite, a non-constant target, no constant input column, enough rows) and raises
   :class:`FitError` with a message that says what is wrong and where;
2. holds out a random ``validation`` fraction of the rows (default 20%, seeded), never seen by the fit;
3. ``method="auto"``: asks :func:`pml.fitting.guide.choose` which methods suit d inputs and n rows; when the rule names
   several, fits each on the training rows and keeps the one with the smallest error on an inner validation split
   of the training rows. Any name of :data:`METHODS` fits that method instead;
4. reports (:class:`PrecisionReport`) the relative RMSE (paper Eq. 1) on the training and validation rows, the
   float64 floor for this data's scale (the error left by rounding the targets to float64), the chart's promise,
   and where the remaining error most likely comes from: the precision limit, generalisation, optimisation or the
   architecture (paper §1.2's error sources).

The pieces: :mod:`pml.fitting.checks` (input checks), :mod:`pml.fitting.methods` (the methods ``fit`` can use),
:mod:`pml.fitting.report` (the precision report and its diagnosis), :mod:`pml.fitting.model` (the fitted model and
its file).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Sequence

import numpy as np

from pml import metrics
from pml.fitting import guide
from pml.fitting.budget import DEFAULT_TIME_LIMIT, check_time_limit, choose_within
from pml.fitting.checks import (
    FitError,
    check_inputs,
    check_predictions,
    check_rows,
    check_scale,
    check_seed,
    check_target,
    split_rows,
)
from pml.fitting.methods import (
    MAX_SELECTION_ROWS,
    METHODS,
    check_method_fits,
    method_names,
    method_spec,
    predictor_of,
    run_method,
)
from pml.fitting.model import FittedModel
from pml.fitting.report import PrecisionReport, diagnose, float64_floor
from pml.fitting.transforms import IDENTITY, admissible, of_params, transform_named

__all__ = ["fit"]


def _finite_rel_rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Relative RMSE (paper Eq. 1) over the finite predictions; NaN if there are none."""
    return metrics.finite_rmse(pred, y, relative=True)[0]


FLOOR_STOP = 100.0  # auto for d >= 3 stops trying candidates at this multiple of the float64 floor
_NOT_PARAMS = ("X", "box", "centre", "half", "input_mean", "input_std")  # data and input maps, not fitted numbers


def fit(X, y, method: str = "auto", *, validation: float = 0.2, seed: int = 0, progress: bool | None = None,
        smooth: bool = True, refit: bool = False, input_names: Sequence[str] | None = None, target_name: str = "y",
        data_floor: float | None = None, time_limit: float | None = None, transform: str | None = None,
        **options) -> FittedModel:
    """Fit y = f(X) to high precision and report how precise the fit is (paper Section 5 and Figure 10).

    The data are checked, a random ``validation`` fraction of the rows is held out, and ``method="auto"`` asks the
    User's Guide rules (:func:`pml.fitting.guide.choose`) which methods suit d inputs and n rows; when a rule names
    several, each is fitted on the training rows and the one with the smallest error on an inner validation split is
    kept. The report gives the relative RMSE (paper Eq. 1) on the training and validation rows, the float64 floor of
    the data and where the remaining error most likely comes from (:func:`diagnose`). Used in
    :doc:`/book/05_users_guide`.

    Parameters
    ----------
    X : array_like
        (n, d) inputs, or (n,) for d = 1; finite numbers, no constant column.
    y : array_like
        (n,) targets; finite and not constant.
    method : str, optional
        ``"auto"`` (default: the guide's rules) or a name of ``pml.fitting.METHODS`` (``"poly"``, ``"spline"``,
        ``"readout"``, ``"rbf"``, ``"simplex"``, ``"lm-multistage"``, ...).
    validation : float, optional
        Fraction of rows held out, 0 <= validation < 1 (default 0.2), split with ``seed``.
    seed : int, optional
        Seed of the row split and of every random choice of the method (default 0).
    progress : bool or None, optional
        Show progress bars on stderr; None (default): only when stderr is a terminal.
    smooth : bool, optional
        False tells ``auto`` the target has kinks or steps (default True).
    refit : bool, optional
        Refit on all rows after validation (default False).
    input_names : sequence of str, optional
        Names of the d inputs (default ``x0``, ``x1``, ...).
    target_name : str, optional
        Name of the target (default ``"y"``).
    data_floor : float, optional
        The relative RMSE to which the targets are known, if they were rounded (``pml fit`` computes it from a CSV's
        digits).
    time_limit : float, optional
        Seconds ``auto`` may spend on its candidates for d >= 3 (default 600): they are tried cheapest first and the
        best so far is kept (:mod:`pml.fitting.budget`). Positive and finite. With a named method that has a
        ``time_limit`` option (``kernel``, ``deep-lm``, ``lm-multistage``), it sets that option.
    transform : str, optional
        Fit a transformed target against transformed inputs (:mod:`pml.fitting.transforms`), e.g. ``"log y ~ log
        x"`` for a product of powers or ``"y^2 ~ x"`` for a distance; predictions are of y. None (default): a named
        method fits y against x, and ``auto`` for d >= 3 tries every transform the data admit with its first
        candidate (the polynomial) and fits the others under the best one.
    **options
        Options of a named method (for example ``max_degree`` for ``"poly"``).

    Returns
    -------
    FittedModel
        The model; ``model.report`` is its :class:`PrecisionReport`.

    Raises
    ------
    FitError
        For bad data (non-numeric, non-finite, constant target or input, too few rows), an unknown method or option,
        or a fit without finite predictions; the message says what is wrong and what is valid.
    """
    t0 = time.perf_counter()
    if not isinstance(method, str):
        raise FitError(f"method must be a name; valid methods: {', '.join(method_names())}")
    if method != "auto":
        spec = method_spec(method)
    if not (isinstance(validation, (int, float)) and 0 <= validation < 1):
        raise FitError(f"validation must be a fraction in [0, 1), got {validation!r}")
    seed = check_seed(seed)
    if time_limit is not None:
        time_limit = check_time_limit(time_limit)
        if method != "auto" and "time_limit" in spec.options:
            options.setdefault("time_limit", time_limit)
    X = check_inputs(X, input_names, what="X")
    n, d = X.shape
    if transform is not None:
        try:
            transform = transform_named(transform)
        except ValueError as exc:
            raise FitError(str(exc)) from None
    names = tuple(input_names) if input_names is not None else tuple(f"x{j}" for j in range(d))
    tr, va = split_rows(n, float(validation), [seed, 11])
    held = f" ({va.size} of {n} rows held out for validation)" if va.size else ""
    if method == "auto":  # too few rows first: one row is not "a constant target"
        check_rows(n, guide.min_rows(d, smooth), d)
    else:
        check_method_fits(spec, tr.size, d, held)
    y = check_target(y, n, target_name)
    for j in range(d):
        if np.all(X[:, j] == X[0, j]):
            raise FitError(f"input {names[j]!r} is constant (every value is {float(X[0, j])!r}): drop it")
        check_scale(X[:, j], f"input {names[j]!r}")
    if transform is not None and transform not in admissible(X, y, [transform]):  # the sign as well
        raise FitError(f"transform {transform.name!r} does not suit these data: " + (
            "log x needs every input positive" if transform.log_inputs and not np.all(X > 0) else
            f"{transform.name.split(' ~ ')[0]} needs a target of that sign everywhere (and nonzero for the log)"))
    progress = (sys.stderr.isatty() if progress is None else bool(progress))

    rule = None
    candidates: list[dict] = []
    fitted = None
    if method == "auto":
        if options:
            raise FitError(f"options {sorted(options)} need a named method, not 'auto'")
        try:
            choice = guide.choose(d, n, smooth=smooth)
        except ValueError as exc:
            raise FitError(str(exc)) from None
        rule = choice.rule
        usable = []
        for name in choice.methods:
            try:
                check_method_fits(METHODS[name], tr.size, d, held)
                usable.append(name)
            except FitError as exc:
                candidates.append({"method": name, "skipped": str(exc), "inner_rel_rmse": None})
        if not usable:
            raise FitError(f"too few rows: no method of rule {rule.key!r} can be fitted to {tr.size} training "
                           f"rows{held}: " + "; ".join(c["skipped"] for c in candidates))
        if len(usable) == 1:
            chosen = usable[0]
            candidates.append({"method": chosen, "skipped": None, "inner_rel_rmse": None})
        elif d >= 3:  # within the time budget, cheapest first, under transforms (pml.fitting.budget)
            budget = DEFAULT_TIME_LIMIT if time_limit is None else time_limit
            tried_transforms = [transform] if transform is not None else admissible(X, y)
            chosen, fitted, tried = choose_within(usable, X[tr], y[tr], seed=seed, time_limit=budget,
                                                  progress=progress, transforms=tried_transforms,
                                                  stop_below=FLOOR_STOP * float64_floor(y[tr]))
            candidates += tried
        else:  # d <= 2: every candidate is cheap; compare them on at most MAX_SELECTION_ROWS inner-fit rows
            chosen, fitted, tried = choose_within(usable, X[tr], y[tr], seed=seed, time_limit=math.inf,
                                                  progress=progress, max_rows=MAX_SELECTION_ROWS,
                                                  transforms=[transform or IDENTITY])
            candidates += tried
        spec = METHODS[chosen]
        reason = (f"d = {d}, n = {n} rows, {'smooth' if smooth else 'non-smooth'} target -> rule {rule.key!r} "
                  f"({', '.join(rule.methods)}). {rule.reason}")
    else:
        reason = f"requested: {spec.description}"
    check_method_fits(spec, tr.size, d, held)

    if fitted is None:
        fitted = run_method(spec, X[tr], y[tr], seed, progress, options, transform or IDENTITY)
    predict = predictor_of(spec, fitted)
    p_tr = np.asarray(predict(X[tr]), dtype=np.float64).reshape(-1)
    check_predictions(p_tr, "the training rows")
    train_rel = _finite_rel_rmse(p_tr, y[tr])
    y_rms = float(np.sqrt(np.mean(y**2)))
    if va.size:
        p_va = np.asarray(predict(X[va]), dtype=np.float64).reshape(-1)
        check_predictions(p_va, "the validation rows", nan_allowed=spec.name == "simplex")  # simplex: NaN outside the hull
        val_rel = _finite_rel_rmse(p_va, y[va])
        ok = np.isfinite(p_va)
        val_max = float(np.max(np.abs(p_va[ok] - y[va][ok])) / np.sqrt(np.mean(y[va] ** 2))) if ok.any() else math.nan
        n_nonfinite = int(np.sum(~ok))
    else:
        val_rel = val_max = math.nan
        n_nonfinite = 0
    floor = float64_floor(y)
    if data_floor is not None and not (data_floor >= 0 and math.isfinite(data_floor)):
        raise FitError(f"data_floor must be a non-negative number, got {data_floor!r}")
    source, why = diagnose(spec.kind, train_rel, val_rel, floor, data_floor)
    if refit and va.size:
        fitted = run_method(spec, X, y, seed, progress, options, of_params(fitted.params))
        predict = predictor_of(spec, fitted)
        check_predictions(np.asarray(predict(X), dtype=np.float64).reshape(-1), "the rows (refit on all rows)")
    n_params = int(sum(v.size for k, v in fitted.state.items() if k not in _NOT_PARAMS))
    report = PrecisionReport(
        method=spec.name, requested=method, kind=spec.kind, rule=rule.key if rule else None, reason=reason,
        promise=rule.promise if rule else None, candidates=tuple(candidates), details=fitted.details, n_rows=n,
        n_train=int(tr.size), n_validation=int(va.size), dim=d, input_names=names, target_name=str(target_name),
        y_rms=y_rms, train_rel_rmse=train_rel, val_rel_rmse=val_rel, val_max_rel_err=val_max,
        n_val_nonfinite=n_nonfinite, float64_floor=floor, data_floor=data_floor, error_source=source, diagnosis=why,
        refit=bool(refit and va.size), n_params=n_params, seconds=time.perf_counter() - t0, seed=seed,
        transform=of_params(fitted.params).name)
    return FittedModel(spec.name, fitted.state, fitted.params, names, target_name, report, predict)
