"""``auto`` for d >= 3: try the candidates cheapest first within a time budget, keep the best on validation.

Paper §5: "for higher-dimensional problems (d >= 3), neural networks are typically the most promising choice", but
no single method wins everywhere in 3-6 dimensions: a Gaussian-process mean (:mod:`pml.approx.kernel`) wins on
oscillatory targets, a deep tanh network trained by Levenberg-Marquardt (:mod:`pml.nn.deep`) where there is
compositional structure or a singular corner, a polynomial on rational-smooth targets (the User's Guide chapter
measures them). So :func:`choose_within` fits every candidate of the rule on the inner-fit rows, in the rule's
order (cheapest first), scores each on the inner validation rows, and keeps the smallest error. The first candidate
(the polynomial) is fitted under every transform the data admit (:mod:`pml.fitting.transforms`: a product of powers
is exact in log y against log x), the others under the transform with which it did best if that beat the target as
given by ``TRANSFORM_GAIN`` (the transforms take at most ``SCREEN_SHARE`` of the time limit, so that a short limit
still leaves time for the others); every error that chooses is of the target as given, and the search stops once a
candidate is within ``stop_below`` (``fit``: 100 times the float64 floor):

* ``poly`` and ``readout`` choose their own hyper-parameters inside the inner-fit rows; the winner among them is
  refitted on all training rows (about as long as its inner fit; this refit comes after the time-limited search);
* ``kernel`` and ``deep-lm`` choose theirs (length scales, restarts, nugget; architecture, stopping, stages) on the
  inner validation rows, and their score is that validation error. The kernel's final solve then uses the inner
  validation rows too; the network is kept as trained (a refit would cost the whole budget again).

The budget: each candidate starts only while time is left; the kernel gets at most a third of what is left, the
network the rest (less a reserve for the final refit and the report). The outer validation rows that the precision
report quotes are never seen.
"""

from __future__ import annotations

import math
import time

import numpy as np

from pml import metrics
from pml.fitting.checks import FitError
from pml.fitting.methods import (
    METHODS,
    check_method_fits,
    inner_split,
    predictor_of,
    progress_bar,
    run_method,
    transformed,
)
from pml.fitting.transforms import IDENTITY, Transform, label
from pml.threads import limit_threads

__all__ = ["BUDGETED", "DEFAULT_TIME_LIMIT", "choose_within", "check_time_limit"]

DEFAULT_TIME_LIMIT = 600.0  # seconds: ten minutes on 2 cores
BUDGETED = ("kernel", "deep-lm")  # candidates that take their share of the budget and their validation rows
_RESERVE = 0.05  # of the budget, kept for the final refit and the report
_MIN_SECONDS = 1.0
# The other candidates take the first's best transform only when it beat the identity by this factor: where every
# polynomial is poor (an oscillatory target), which transform it likes best says little about the others (measured:
# III.15.12's kernel reached 4e-2 fitted to y^2, about 1e-6 fitted to y, after a 1.7x gain of the polynomial on y^2).
TRANSFORM_GAIN = 10.0
SCREEN_SHARE = 0.25  # of the time limit, at most, for the first candidate under the transforms (the others need time)


def check_time_limit(value) -> float:
    """``value`` as a positive, finite number of seconds; :class:`~pml.fitting.FitError` otherwise.

    Parameters
    ----------
    value : float
        Seconds.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    FitError
        If it is not a positive, finite number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise FitError(f"time_limit must be a positive, finite number of seconds (e.g. 600), got {value!r}")
    return float(value)


def _score(pred, y) -> float:
    s = metrics.finite_rmse(np.asarray(pred, dtype=np.float64).reshape(-1), y, relative=True)[0]
    return s if math.isfinite(s) else math.inf


def choose_within(names, X, y, *, seed: int, time_limit: float, progress: bool, max_rows: int | None = None,
                  transforms=(IDENTITY,), stop_below: float | None = None):
    """Fit ``names`` (in order) on the inner split of the training rows (X, y) within ``time_limit`` seconds.

    With several ``transforms`` (:mod:`pml.fitting.transforms`), the first name is fitted under each of them, in
    order, while that has taken less than ``SCREEN_SHARE`` of the time limit, and the other names under the one with
    which it did best, if that beat the first transform (the identity) by ``TRANSFORM_GAIN``, else under the first;
    every error is measured on the target as given.

    Parameters
    ----------
    names : sequence of str
        Candidate methods, cheapest first.
    X, y : numpy.ndarray
        The training rows.
    seed : int
        The seed.
    time_limit : float
        Seconds (``math.inf``: no limit).
    progress : bool
        Show a progress bar.
    max_rows : int, optional
        Fit the candidates to a seeded subsample of at most this many inner-fit rows (the ranking, not the best
        fit, is what they are for); None: every inner-fit row.
    transforms : sequence of Transform, optional
        Transforms the first candidate is tried under (default: the identity only).
    stop_below : float, optional
        Stop trying candidates once one has an inner validation error at most this (nothing left to gain: e.g. a
        multiple of the float64 floor).

    Returns
    -------
    tuple
        (chosen name, its fitted model, candidate records with ``method``, ``transform``, ``skipped``,
        ``inner_rel_rmse``, ``seconds``; the chosen model predicts y from x whatever its transform).

    Raises
    ------
    FitError
        If no candidate could be fitted in time.
    """
    t0 = time.perf_counter()
    n, d = X.shape
    itr, iva = inner_split(n, seed + 1)
    if max_rows is not None and itr.size > max_rows:
        itr = np.sort(np.random.default_rng([seed, 13]).choice(itr, max_rows, replace=False))
    Xf, yf, Xv, yv = X[itr], y[itr], X[iva], y[iva]
    records, fits = [], {}
    cheap_seconds = 0.0
    plan = [(names[0], t) for t in transforms] + [(m, None) for m in names[1:]]  # None: the first's best transform
    bar = progress_bar(progress, len(plan), "auto: candidates")

    def left() -> float:
        return time_limit * (1 - _RESERVE) - (time.perf_counter() - t0)

    def best_transform() -> Transform:
        """The first candidate's best transform, if it beat the first transform (the identity) by TRANSFORM_GAIN."""
        tried = [(r["inner_rel_rmse"], k) for k, r in enumerate(records) if r["skipped"] is None
                 and r["method"] == names[0]]
        if not tried:
            return transforms[0]
        err, k = min(tried)
        first = [e for e, j in tried if records[j]["transform"] == transforms[0]]
        return records[k]["transform"] if not first or err * TRANSFORM_GAIN <= first[0] else transforms[0]

    try:
        for name, transform in plan:
            transform = transform if transform is not None else best_transform()
            key = (name, transform)
            bar.set_postfix_str(label(name, transform.name))
            start = time.perf_counter()
            spec = METHODS[name]
            try:
                if stop_below is not None and any(r["skipped"] is None and r["inner_rel_rmse"] <= stop_below
                                                  for r in records):
                    raise FitError(f"a candidate before it reached {stop_below:.1e}, within reach of the float64 "
                                   "floor: nothing left to gain")
                check_method_fits(spec, itr.size, d, " (inner split for comparing candidates)")
                if left() < max(_MIN_SECONDS, cheap_seconds if name not in BUDGETED else 0.0):
                    raise FitError(f"the time limit ({time_limit:g} s) was spent on the candidates before it")
                if transform is not transforms[0] and name == names[0] and (
                        time.perf_counter() - t0 > SCREEN_SHARE * time_limit):  # starts while within its share
                    raise FitError(f"the transforms may take {SCREEN_SHARE:.0%} of the time limit "
                                   f"({SCREEN_SHARE * time_limit:.3g} s), spent before it")
                with np.errstate(all="ignore"):
                    Xf_t, yf_t, Xv_t, yv_t = (transform.inputs(Xf), transform.forward(yf), transform.inputs(Xv),
                                              transform.forward(yv))
                if name in BUDGETED:
                    rest = [m for m in names[names.index(name) + 1:] if m in BUDGETED]
                    share = left() / 3 if rest else left()
                    score_of = None if transform.is_identity else (lambda p, t=transform: _score(t.inverse(p), yv))
                    with limit_threads(1):
                        f = spec.fitter(Xf_t, yf_t, seed=seed, progress=progress, time_limit=max(share, _MIN_SECONDS),
                                        validation_data=(Xv_t, yv_t), **({"score_of": score_of} if score_of else {}))
                    s = float(f.score) if f.score is not None and math.isfinite(f.score) else math.inf
                    f = transformed(spec, f, transform)
                else:
                    f = run_method(spec, Xf, yf, seed, False, {}, transform)
                    s = _score(predictor_of(spec, f)(Xv), yv)
                    cheap_seconds = time.perf_counter() - start  # the next cheap candidate costs about as much
                fits[key] = f
                records.append({"method": name, "transform": transform, "skipped": None, "inner_rel_rmse": s,
                                "seconds": time.perf_counter() - start})
            except FitError as exc:
                records.append({"method": name, "transform": transform, "skipped": str(exc), "inner_rel_rmse": None,
                                "seconds": time.perf_counter() - start})
            bar.update(1)
    finally:
        bar.close()
    scored = [(r["inner_rel_rmse"], k) for k, r in enumerate(records) if r["skipped"] is None]
    if not scored:
        raise FitError("no candidate method could be fitted: " + "; ".join(
            f"{label(r['method'], r['transform'].name)}: {r['skipped']}" for r in records if r["skipped"]))
    best = records[min(scored)[1]]
    chosen, transform = best["method"], best["transform"]
    fitted = fits[(chosen, transform)]
    if chosen not in BUDGETED:  # refit on all training rows: about as long as its inner fit, after the search
        fitted = run_method(METHODS[chosen], X, y, seed, progress, {}, transform)
    for r in records:
        r["transform"] = r["transform"].name
    return chosen, fitted, records
