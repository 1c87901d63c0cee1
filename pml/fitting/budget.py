"""``auto`` within a time limit: try the candidates cheapest first, keep the best on validation; and what a fit
will need in memory.

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
  refitted on the training rows;
* ``kernel`` and ``deep-lm`` choose theirs (length scales, restarts, nugget; architecture, stopping, stages) on the
  inner validation rows, and their score is that validation error. The kernel's final solve then uses the inner
  validation rows too; the network is kept as trained (a refit would cost the whole budget again).

The time limit is a limit on everything (:func:`pml.fitting.fit` promises the wall time of the limit plus 10%):

* **screening subsample**: with a limit, the candidates are compared on at most :func:`screen_rows` inner-fit rows
  (about 75 per second of the limit) and a quarter as many inner validation rows (at least 2,000), seeded subsamples
  that the precision report names;
* **every candidate stops in time**: the polynomial's degree search stops before a degree whose modelled cost would
  end past its share, the readout network's hidden layer is cut to what its share allows, the kernel's final solve
  uses as many rows as fit in its share, and the deep network is narrowed until its Levenberg-Marquardt iterations
  are short and stops before an iteration that would end late, keeping its best weights. The polynomial's runs
  under the transforms share ``SCREEN_SHARE`` of the limit, the readout network a third of what is left, the
  kernel a third of what is left then and the network the rest;
* **bounded refit**: a ``poly`` or ``readout`` winner is refitted on as many training rows as the time left allows
  (from its own screening time, linear in the rows; ``REFIT_SHARE`` of the limit is kept for it while the costly
  candidates run), a seeded subsample where that is fewer than all;
* 5% of the limit is kept for the predictions and the report; the imports of the network candidates (torch: seconds
  on a loaded machine) are made before their share is measured out.

Memory (:func:`memory_plan`): the data's copies in :func:`pml.fitting.fit` and, with a time limit, at most
``WORK_BYTES`` (or half the memory left) for the candidates' matrices; a fit whose data alone would not fit in the
available memory is refused before it starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from pml import metrics
from pml.fitting.checks import FitError
from pml.fitting.methods import (
    INNER_FRACTION,
    METHODS,
    SVD_BYTES,
    check_method_fits,
    inner_split,
    predictor_of,
    progress_bar,
    run_method,
    transformed,
    warm_up,
)
from pml.fitting.transforms import IDENTITY, Transform, label
from pml.threads import limit_threads

__all__ = ["BUDGETED", "DEFAULT_TIME_LIMIT", "MemoryPlan", "TIMED", "available_memory", "check_time_limit",
           "choose_within", "memory_plan", "screen_rows", "timed_options"]

DEFAULT_TIME_LIMIT = 600.0  # seconds: ten minutes on 2 cores
BUDGETED = ("kernel", "deep-lm")  # candidates that take their share of the budget and their validation rows
TIMED = ("poly", "readout", "kernel", "deep-lm", "lm-multistage")  # the methods that stop at a time limit
_RESERVE = 0.05  # of the time limit, kept for the predictions on every row and the report
_MIN_SECONDS = 1.0
# The other candidates take the first's best transform only when it beat the identity by this factor: where every
# polynomial is poor (an oscillatory target), which transform it likes best says little about the others (measured:
# III.15.12's kernel reached 4e-2 fitted to y^2, about 1e-6 fitted to y, after a 1.7x gain of the polynomial on y^2).
TRANSFORM_GAIN = 10.0
SCREEN_SHARE = 0.25  # of the time limit, at most, for the first candidate under the transforms (the others need time)
REFIT_SHARE = 0.1  # of the time limit, at most, kept for refitting a poly or readout winner on more rows
SCREEN_ROWS_PER_SECOND = 75  # screening subsample: inner-fit rows per second of the limit (a 30 s limit: 2,250)
MIN_SCREEN_ROWS, MAX_SCREEN_ROWS = 1000, 50_000
MIN_VALIDATION_ROWS = 2000  # the screening subsample keeps at least this many inner validation rows
WORK_BYTES = 4 * 2**30  # with a time limit, the candidates' matrices take at most this (and half the memory left)
DATA_COPIES = 4  # copies of the data that fit() makes: its checked inputs, the split, the predictions
_MIN_WORK_BYTES = 256 * 2**20  # the least working memory a fit needs besides the data
LARGE_ROWS = 20_000  # fits of more rows (or needing a GiB or more) say what they will use before they start


def screen_rows(time_limit: float) -> int:
    """Inner-fit rows on which ``auto`` compares its candidates within ``time_limit`` seconds (d >= 3).

    Parameters
    ----------
    time_limit : float
        Seconds.

    Returns
    -------
    int
        ``SCREEN_ROWS_PER_SECOND`` per second, within ``MIN_SCREEN_ROWS`` and ``MAX_SCREEN_ROWS``.
    """
    return int(min(MAX_SCREEN_ROWS, max(MIN_SCREEN_ROWS, SCREEN_ROWS_PER_SECOND * time_limit)))


def available_memory() -> int | None:
    """Bytes of memory available to a new computation now: ``MemAvailable`` of /proc/meminfo (Linux), else the
    free physical pages (``os.sysconf``); None where neither is known.

    Returns
    -------
    int or None
        Bytes.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2g} GiB" if n_bytes >= 2**30 / 10 else f"{n_bytes / 2**20:.0f} MiB"


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """What a fit will hold in memory: ``data`` bytes for the copies of the data, ``work`` at most for the methods'
    matrices (None: no bound, a fit without a time limit), ``typical`` the modelled use of both, ``available`` what
    the machine has now (None: unknown).

    Parameters
    ----------
    n, d : int
        Rows and inputs.
    data, typical : int
        Bytes.
    work : int or None
        The bound passed to the methods (``max_bytes``).
    available : int or None
        Bytes available.
    """

    n: int
    d: int
    data: int
    work: int | None
    typical: int
    available: int | None

    @property
    def refusal(self) -> str | None:
        """Why the fit cannot run in the available memory, or None."""
        if self.available is None or self.data + _MIN_WORK_BYTES <= self.available:
            return None
        return (f"{self.n} rows x {self.d} inputs need about {_gb(self.data + _MIN_WORK_BYTES)} of memory to fit "
                f"({DATA_COPIES} copies of the data and the methods' matrices), but only {_gb(self.available)} "
                f"are available: fit a subsample of the rows")

    def note(self) -> str:
        """One line: the rows and the memory the fit will use."""
        bits = ([f"at most {_gb(self.data + self.work)}"] if self.work is not None else []) + (
            [f"{_gb(self.available)} available"] if self.available is not None else [])
        extra = f" ({'; '.join(bits)})" if bits else ""
        return f"fitting {self.n} rows x {self.d} inputs: about {_gb(self.typical)} of memory{extra}"

    @property
    def large(self) -> bool:
        """Whether the fit is large enough to say so before it starts."""
        return self.n >= LARGE_ROWS or self.typical >= 2**30


def _matrix_bytes(method: str, rows: int, d: int) -> int:
    """Bytes of ``method``'s largest matrices on ``rows`` rows (0 for the methods not modelled)."""
    if method == "poly":
        return SVD_BYTES * rows * min(2000 if d >= 2 else 101, int(rows * (1 - INNER_FRACTION)))
    if method == "readout":
        return SVD_BYTES * rows * min(1001 if d >= 2 else 82, rows // 2 + 1)
    if method == "kernel":
        return 24 * min(rows, 8000) ** 2  # the kernel matrix, its shifted copy and its Cholesky factor
    return 0


def memory_plan(n: int, d: int, n_train: int, *, time_limit: float | None = None, methods=("poly",)) -> MemoryPlan:
    """The memory a fit of ``n`` rows and ``d`` inputs (``n_train`` training rows) will use.

    The data: ``DATA_COPIES`` copies of the rows. The methods' matrices: with a time limit at most ``WORK_BYTES`` or
    half the memory left after the data (the methods take that bound as ``max_bytes``), typically those of the
    screening subsample (:func:`screen_rows`) and a refit on twice as many rows; without one, the largest of
    ``methods``' own sizes on every training row (a polynomial's basis of up to 2,000 columns, a readout network's
    feature matrix, a kernel's solve on up to 8,000 rows), bounded by nothing.

    Parameters
    ----------
    n, d, n_train : int
        Rows, inputs and training rows.
    time_limit : float, optional
        The fit's time limit (None: none; then its methods take no memory bound).
    methods : sequence of str, optional
        The methods that may run.

    Returns
    -------
    MemoryPlan
        The plan; ``refusal`` says whether the fit cannot run.
    """
    data = int(DATA_COPIES * 8 * n * (d + 1))
    avail = available_memory()
    if time_limit is None:
        need = max([_matrix_bytes(m, n_train, d) for m in methods] + [_MIN_WORK_BYTES])
        return MemoryPlan(int(n), int(d), data, None, data + need, avail)
    work = WORK_BYTES if avail is None else int(max(_MIN_WORK_BYTES, min(WORK_BYTES, (avail - data) / 2)))
    rows = min(n_train, 2 * screen_rows(time_limit))
    need = max([_matrix_bytes(m, rows, d) for m in methods] + [_MIN_WORK_BYTES])
    return MemoryPlan(int(n), int(d), data, work, data + min(need, work), avail)


def timed_options(spec, seconds: float, max_bytes: int | None = None, predict_rows: int = 0) -> dict:
    """The options that make ``spec`` stop within ``seconds`` (and hold its matrices within ``max_bytes``): its
    ``time_limit`` (``lm-multistage``: its ``time_budget`` for all stages; its ``time_limit`` is per stage),
    ``max_bytes`` and the kernel's ``predict_rows``, those it has.

    Parameters
    ----------
    spec : MethodSpec
        The method.
    seconds : float
        Its time limit.
    max_bytes : int, optional
        Its memory bound.
    predict_rows : int, optional
        Rows predicted after the fit (their time counts in the kernel's limit).

    Returns
    -------
    dict
        Options for ``pml.fitting.methods.run_method``.
    """
    out: dict = {}
    seconds = max(float(seconds), 1e-3)
    if "time_budget" in spec.options:
        out["time_budget"] = seconds
    elif "time_limit" in spec.options:
        out["time_limit"] = seconds
    if max_bytes is not None and "max_bytes" in spec.options:
        out["max_bytes"] = int(max_bytes)
    if predict_rows and "predict_rows" in spec.options:
        out["predict_rows"] = int(predict_rows)
    return out


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


def _screening_split(n: int, seed: int, time_limit: float, max_rows: int | None):
    """The inner split of n training rows for comparing candidates, subsampled (seeded) to ``max_rows`` inner-fit
    rows (with a time limit and none given: :func:`screen_rows`) and, with a time limit, a quarter as many inner
    validation rows (at least ``MIN_VALIDATION_ROWS``) -> (inner-fit rows, inner validation rows)."""
    limited = math.isfinite(time_limit)
    itr, iva = inner_split(n, seed + 1)
    n_itr, n_iva = itr.size, iva.size
    if limited and max_rows is None:
        max_rows = screen_rows(time_limit)
    if max_rows is not None and itr.size > max_rows:
        itr = np.sort(np.random.default_rng([seed, 13]).choice(itr, max_rows, replace=False))
    if limited and iva.size > max(MIN_VALIDATION_ROWS, itr.size // 4):
        iva = np.sort(np.random.default_rng([seed, 19]).choice(iva, max(MIN_VALIDATION_ROWS, itr.size // 4),
                                                               replace=False))
    return itr, iva, n_itr, n_iva


@dataclasses.dataclass
class _Search:
    """The state of :func:`choose_within`'s search: its plan and clock, the candidates' records and fits."""

    names: tuple
    transforms: tuple
    plan: list  # (name, transform) in order; transform None: the first candidate's best transform
    time_limit: float
    t0: float
    end: float  # the search and the refit end here; the rest of the limit: predictions and the report
    n_fit: int  # inner-fit rows the candidates are fitted to
    records: list = dataclasses.field(default_factory=list)
    fits: dict = dataclasses.field(default_factory=dict)
    refit_reserve: float = 0.0  # seconds kept for refitting a cheap winner while the costly candidates run

    def left(self) -> float:
        """Seconds left for the candidates (less the refit's reserve)."""
        return self.end - time.perf_counter() - self.refit_reserve

    def best_transform(self) -> Transform:
        """The first candidate's best transform, if it beat the first transform (the identity) by TRANSFORM_GAIN."""
        records, first_name, identity = self.records, self.names[0], self.transforms[0]
        tried = [(r["inner_rel_rmse"], k) for k, r in enumerate(records) if r["skipped"] is None
                 and r["method"] == first_name]
        if not tried:
            return identity
        err, k = min(tried)
        first = [e for e, j in tried if records[j]["transform"] == identity]
        return records[k]["transform"] if not first or err * TRANSFORM_GAIN <= first[0] else identity

    def refit_seconds(self, rows: int) -> float:
        """Modelled seconds of refitting the best cheap candidate so far on ``rows`` rows (linear in the rows)."""
        cheap = [r for r in self.records if r["skipped"] is None and r["method"] not in BUDGETED]
        return min(cheap, key=lambda r: r["inner_rel_rmse"])["seconds"] * rows / self.n_fit if cheap else 0.0

    def share(self, i: int, name: str, transform: Transform, stop_below: float | None, d: int, n: int) -> float:
        """Seconds for candidate ``i`` of the plan; :class:`FitError` (recorded as skipped) if it is not to run."""
        limited = math.isfinite(self.time_limit)
        if stop_below is not None and any(r["skipped"] is None and r["inner_rel_rmse"] <= stop_below
                                          for r in self.records):
            raise FitError(f"a candidate before it reached {stop_below:.1e}, within reach of the float64 "
                           "floor: nothing left to gain")
        check_method_fits(METHODS[name], self.n_fit, d, " (inner split for comparing candidates)")
        if name in BUDGETED and limited and not self.refit_reserve:  # keep time for a cheap winner's refit
            self.refit_reserve = min(REFIT_SHARE * self.time_limit, self.refit_seconds(n))
        screen = name == self.names[0] and len(self.transforms) > 1
        if screen:  # the first candidate's runs share SCREEN_SHARE of the limit
            runs = sum(1 for m, _ in self.plan[i:] if m == self.names[0])
            share_end = self.t0 + SCREEN_SHARE * self.time_limit
            share = min(self.left(), max(0.0, share_end - time.perf_counter()) / runs)
        elif name in BUDGETED:
            share = self.left() / 3 if any(m in BUDGETED for m, _ in self.plan[i + 1:]) else self.left()
        else:
            share = self.left() / (len(self.plan) - i)
        if i == 0:  # the first candidate always runs
            share = max(share, min(self.left(), _MIN_SECONDS))
        elif screen:  # (skipped below once SCREEN_SHARE is spent; a short run stops at a low degree)
            share = max(share, min(self.left(), 0.1 * _MIN_SECONDS))
        if share < _MIN_SECONDS and i and not screen:
            raise FitError(f"the time limit ({self.time_limit:g} s) was spent on the candidates before it")
        if transform is not self.transforms[0] and name == self.names[0] and (
                time.perf_counter() - self.t0 > SCREEN_SHARE * self.time_limit):  # starts while within its share
            raise FitError(f"the transforms may take {SCREEN_SHARE:.0%} of the time limit "
                           f"({SCREEN_SHARE * self.time_limit:.3g} s), spent before it")
        return share


def _fit_candidate(spec, transform: Transform, Xf, yf, Xv, yv, share: float, *, seed: int, progress: bool,
                   limited: bool, max_bytes: int | None, predict_rows: int):
    """One candidate fitted on the inner-fit rows in ``share`` seconds -> (fitted, inner validation error of y)."""
    with np.errstate(all="ignore"):
        Xf_t, yf_t, Xv_t, yv_t = (transform.inputs(Xf), transform.forward(yf), transform.inputs(Xv),
                                  transform.forward(yv))
    if spec.name not in BUDGETED:
        options = timed_options(spec, share, max_bytes) if limited else {}
        f = run_method(spec, Xf, yf, seed, False, options, transform)
        return f, _score(predictor_of(spec, f)(Xv), yv)
    score_of = None if transform.is_identity else (lambda p, t=transform: _score(t.inverse(p), yv))
    extra = timed_options(spec, max(share, _MIN_SECONDS), None, predict_rows)
    if spec.name == "kernel" and max_bytes is not None:  # three m x m matrices in the final solve
        extra["max_rows"] = int(min(spec.options["max_rows"], math.sqrt(max_bytes / 24)))
    with limit_threads(1):
        f = spec.fitter(Xf_t, yf_t, seed=seed, progress=progress, validation_data=(Xv_t, yv_t),
                        **extra, **({"score_of": score_of} if score_of else {}))
    s = float(f.score) if f.score is not None and math.isfinite(f.score) else math.inf
    return transformed(spec, f, transform), s


def choose_within(names, X, y, *, seed: int, time_limit: float, progress: bool, max_rows: int | None = None,
                  transforms=(IDENTITY,), stop_below: float | None = None, max_bytes: int | None = None,
                  predict_rows: int = 0, sampling: dict | None = None):
    """Fit ``names`` (in order) on the inner split of the training rows (X, y) within ``time_limit`` seconds.

    With several ``transforms`` (:mod:`pml.fitting.transforms`), the first name is fitted under each of them, in
    order, while that has taken less than ``SCREEN_SHARE`` of the time limit, and the other names under the one with
    which it did best, if that beat the first transform (the identity) by ``TRANSFORM_GAIN``, else under the first;
    every error is measured on the target as given. With a finite ``time_limit`` everything, the refit of the winner
    included, ends within it (module docstring); without one (``math.inf``) nothing is subsampled or stopped beyond
    ``max_rows``.

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
        fit, is what they are for); None: every inner-fit row, or :func:`screen_rows` with a time limit.
    transforms : sequence of Transform, optional
        Transforms the first candidate is tried under (default: the identity only).
    stop_below : float, optional
        Stop trying candidates once one has an inner validation error at most this (nothing left to gain: e.g. a
        multiple of the float64 floor).
    max_bytes : int, optional
        Memory for a method's matrices (with a time limit; :func:`memory_plan`).
    predict_rows : int, optional
        Rows the caller predicts with the chosen model (the kernel keeps time for them).
    sampling : dict, optional
        Filled with what was subsampled: ``fit_rows`` and ``validation_rows`` ((used, of) inner-fit and inner
        validation rows of the comparison) and ``refit_rows`` ((rows, of) for a refitted winner, or None).

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
    limited = math.isfinite(time_limit)
    n, d = X.shape
    itr, iva, n_itr, n_iva = _screening_split(n, seed, time_limit, max_rows)
    sampling = {} if sampling is None else sampling
    sampling.update(fit_rows=(int(itr.size), int(n_itr)), validation_rows=(int(iva.size), int(n_iva)),
                    refit_rows=None)
    Xf, yf, Xv, yv = X[itr], y[itr], X[iva], y[iva]
    plan = [(names[0], t) for t in transforms] + [(m, None) for m in names[1:]]  # None: the first's best transform
    search = _Search(names, transforms, plan, time_limit, t0, end=t0 + time_limit * (1 - _RESERVE), n_fit=itr.size)
    records = search.records
    bar = progress_bar(progress, len(plan), "auto: candidates")
    try:
        for i, (name, transform) in enumerate(plan):
            transform = transform if transform is not None else search.best_transform()
            bar.set_postfix_str(label(name, transform.name))
            if limited and search.left() > _MIN_SECONDS:
                warm_up(name)  # imports (seconds for torch): before this candidate's time and share are measured
            start = time.perf_counter()
            try:
                share = search.share(i, name, transform, stop_below, d, n)
                f, s = _fit_candidate(METHODS[name], transform, Xf, yf, Xv, yv, share, seed=seed, progress=progress,
                                      limited=limited, max_bytes=max_bytes, predict_rows=predict_rows)
                search.fits[(name, transform)] = f
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
    fitted = search.fits[(chosen, transform)]
    if chosen not in BUDGETED and not limited:  # refit on all training rows: about as long as its inner fit
        fitted = run_method(METHODS[chosen], X, y, seed, progress, {}, transform)
    elif chosen not in BUDGETED:  # refit on as many training rows as the time left allows
        fitted = _bounded_refit(METHODS[chosen], X, y, fitted, best["seconds"] / itr.size, search.end, seed, progress,
                                transform, max_bytes, itr.size, sampling)
    for r in records:
        r["transform"] = r["transform"].name
    return chosen, fitted, records


def _bounded_refit(spec, X, y, fitted, seconds_per_row: float, end: float, seed: int, progress: bool, transform,
                   max_bytes, screened: int, sampling: dict):
    """``spec`` refitted on all rows of (X, y), or on a seeded subsample of as many as the time left until ``end``
    allows (modelled linear in the rows from its screening time), stopped at ``end`` in any case; ``fitted`` (the
    screening fit) where fewer rows than 1.25 times the screened ones fit, or the refit fails."""
    n = X.shape[0]
    left = end - time.perf_counter()
    rows = n if seconds_per_row * n <= left else int(left / max(seconds_per_row, 1e-12))
    if rows < min(n, int(1.25 * screened)):
        sampling["refit_rows"] = (0, n)
        return fitted
    idx = np.arange(n) if rows >= n else np.sort(np.random.default_rng([seed, 37]).choice(n, rows, replace=False))
    try:
        out = run_method(spec, X[idx], y[idx], seed, progress, timed_options(spec, left, max_bytes), transform)
    except FitError:
        sampling["refit_rows"] = (0, n)
        return fitted
    sampling["refit_rows"] = (int(idx.size), n)
    return out
