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

Methods (``METHODS``; each picks its own hyper-parameters on an inner split of the training rows):

=============== ============= ==================================================================================
name            kind          what
=============== ============= ==================================================================================
poly            least-squares global polynomial, total degree chosen on validation, Chebyshev basis (any d)
spline          interpolant   interpolating B-spline, order 1/3/5/7 chosen on validation (d = 1, distinct x)
readout         least-squares one-hidden-layer tanh network, output layer solved exactly by truncated SVD
rbf             interpolant   polyharmonic RBF with polynomial tail, kernel chosen on validation (<= 5000 rows)
simplex         interpolant   linear simplex interpolation (Delaunay; d <= 6); NaN outside the convex hull
lm-multistage   trained       boosted tanh networks trained by Levenberg-Marquardt, merged into one network
adam-tanh       trained       tanh MLP trained with Adam (the paper's baseline)
adam-relu       trained       ReLU MLP trained with Adam (the paper's baseline)
=============== ============= ==================================================================================

(Chebyshev interpolation, ``pml.approx.classical.Chebyshev``, needs the function itself, not data, and is not offered.)

A fitted model is saved as one ``.npz`` file (arrays plus a JSON metadata entry with the pml version and the file
format version); the file is written to a temporary name and renamed, so an error or Ctrl-C never leaves a
half-written model. Loading a file from another pml version, another format version, or a file that is not a pml
model raises :class:`ModelFileError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pml import __version__, metrics
from pml.fitting import guide

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FitError",
    "FittedModel",
    "METHODS",
    "MethodSpec",
    "ModelFileError",
    "PrecisionReport",
    "diagnose",
    "fit",
    "float64_floor",
    "load",
]

FORMAT = "pml-model"
FORMAT_VERSION = 1
INNER_FRACTION = 0.2  # the inner validation split that chooses hyper-parameters and candidates
MAX_SELECTION_ROWS = 5000  # auto compares its candidates on at most this many training rows


class FitError(ValueError):
    """Bad input to :func:`fit` or :meth:`FittedModel.predict`: the message says what is wrong and where."""


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read as a model of this pml version."""


# ------------------------------------------------------------------------------------------------------ helpers
def _finite_rel_rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Relative RMSE (paper Eq. 1) over the finite predictions; NaN if there are none."""
    return metrics.finite_rmse(pred, y, relative=True)[0]


def float64_floor(y) -> float:
    """Relative RMSE left by rounding the targets ``y`` to float64: each value is off by up to half a unit in the
    last place, uniformly, i.e. an RMS of spacing(y)/sqrt(12). No float64 fit can be more precise on average."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    y_rms = float(np.sqrt(np.mean(y**2)))
    if y_rms == 0:
        return math.nan
    return float(np.sqrt(np.mean(np.spacing(np.abs(y)) ** 2 / 12.0)) / y_rms)


def _box(X: np.ndarray) -> np.ndarray:
    lo, hi = X.min(axis=0), X.max(axis=0)
    return np.stack([lo, np.where(hi > lo, hi, lo + 1.0)], axis=1)


def _split(n: int, fraction: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices: a seeded permutation, the held-out part ``round(fraction * n)`` rows."""
    perm = np.random.default_rng(seed).permutation(n)
    n_out = int(round(fraction * n))
    if fraction > 0:
        n_out = max(1, n_out)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(enabled: bool, total: int | None, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm  # imported only when a bar is shown

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _mlp_predict(layers: list[tuple[np.ndarray, np.ndarray]], activation: str, X: np.ndarray,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """A feed-forward network on raw inputs, in NumPy float64 (no torch needed to predict)."""
    h = X if mean is None else (X - mean) / std
    act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    for i, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = act(h)
    return h.reshape(-1)


def _layers_of(net) -> list[tuple[np.ndarray, np.ndarray]]:
    from torch import nn

    return [(m.weight.detach().cpu().numpy().astype(np.float64).copy(),
             m.bias.detach().cpu().numpy().astype(np.float64).copy()) for m in net if isinstance(m, nn.Linear)]


def _layers_state(layers) -> dict[str, np.ndarray]:
    state = {}
    for i, (W, b) in enumerate(layers):
        state[f"W{i}"], state[f"b{i}"] = W, b
    return state


def _state_layers(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    n = sum(1 for k in state if k.startswith("W") and k[1:].isdigit())
    return [(state[f"W{i}"], state[f"b{i}"]) for i in range(n)]


# ------------------------------------------------------------------------------------------------------ methods
@dataclasses.dataclass(frozen=True)
class _Fitted:
    state: dict[str, np.ndarray]
    params: dict[str, Any]
    details: str
    predict: Callable[[np.ndarray], np.ndarray] | None = None  # a live predictor; None: build from the state


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method ``fit`` can use: how to fit it, how to rebuild its predictor from saved arrays, and its limits.

    ``kind`` decides how the error is diagnosed: "interpolant" (fits the training rows exactly), "least-squares"
    (the best coefficients are solved for exactly: no optimisation error) or "trained" (iterative optimisation).
    """

    name: str
    kind: str
    description: str
    fitter: Callable[..., _Fitted]
    predictor: Callable[[dict, dict], Callable[[np.ndarray], np.ndarray]]
    options: dict[str, Any]
    min_rows: Callable[[int], int]
    d_max: int | None = None
    max_rows: int | None = None


def _inner(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return _split(n, INNER_FRACTION, [seed, 17])


# -- poly
def _fit_poly(X, y, *, seed, progress, max_degree=None, rcond=1e-15, patience=4, max_coefficients=2000):
    from pml.approx.classical import PolynomialLSQ

    n, d = X.shape
    box = _box(X)
    tr, va = _inner(n, seed)
    max_degree = (100 if d == 1 else 60) if max_degree is None else int(max_degree)
    scores: dict[int, float] = {}
    best, since = None, 0
    bar = _bar(progress, None, "poly: degree")
    try:
        for k in range(0, max_degree + 1):
            if math.comb(d + k, k) > min(int(max_coefficients), tr.size):
                break
            m = PolynomialLSQ(rcond).fit(X[tr], y[tr], box, degree=k)
            scores[k] = float(np.sqrt(np.mean((m.predict(X[va]) - y[va]) ** 2)))
            bar.update(1)
            if best is None or scores[k] < scores[best]:
                best, since = k, 0
            else:
                since += 1
                if since >= patience:
                    break
    finally:
        bar.close()
    if best is None:
        raise FitError(f"poly: too few rows ({n}) for any polynomial")
    m = PolynomialLSQ(rcond).fit(X, y, box, degree=best)
    return _Fitted({"coef": m.coef, "centre": m.centre, "half": m.half}, {"degree": best, "rcond": rcond},
                   f"total degree {best} ({m.coef.size} coefficients) chosen on an inner validation split "
                   f"(degrees 0-{max(scores)} tried)", m.predict)


def _poly_predictor(state, params):
    from pml.approx.classical import PolynomialLSQ

    m = PolynomialLSQ(params["rcond"])
    m.centre, m.half, m.coef, m.degree = state["centre"], state["half"], state["coef"], int(params["degree"])
    return m.predict


# -- spline (1D)
def _fit_spline(X, y, *, seed, progress, orders=(1, 3, 5, 7)):
    from pml.approx import splines

    x = X[:, 0]
    uniq, counts = np.unique(x, return_counts=True)
    if uniq.size < x.size:
        raise FitError(f"spline: the input has repeated values (e.g. {uniq[counts > 1][0]!r}); an interpolating "
                       "spline needs distinct x. Average the repeats or use method='poly'")
    tr, va = _inner(x.size, seed)
    scores = {}
    for k in orders:
        if tr.size < k + 1:
            continue
        o = np.argsort(x[tr])
        s = splines.spline_1d(x[tr][o], y[tr][o], k)
        scores[k] = float(np.sqrt(np.mean((s(x[va]) - y[va]) ** 2)))
    if not scores:
        raise FitError(f"spline: too few rows ({x.size}) for any spline order")
    k = min(scores, key=scores.get)
    o = np.argsort(x)
    s = splines.spline_1d(x[o], y[o], k)
    return _Fitted({"t": s.t, "c": s.c}, {"order": int(k)},
                   f"order {k} interpolating spline through {x.size} points, order chosen on an inner validation "
                   f"split from {sorted(scores)}")


def _spline_predictor(state, params):
    from scipy.interpolate import BSpline

    s = BSpline(state["t"], state["c"], int(params["order"]), extrapolate=True)
    return lambda X: s(X[:, 0])


# -- readout network
def _fit_readout(X, y, *, seed, progress, n_units=None, scales=(0.1, 0.3, 1.0),
                 rconds=(1e-12, 1e-13, 1e-14, 1e-15, 1e-16)):
    from pml.nn import readout

    n, d = X.shape
    box = _box(X)
    if d == 1:
        units = [int(u) for u in (n_units or (24, 41, 81))]
        grid = {"n_units": units, "lam": [0.15, 0.25, 0.4], "halo": [3, 6, 10]}
        geometry = "uniform"
        grid["halo"] = [h for h in grid["halo"] if 2 * h + 2 <= min(units)] or [min(3, (min(units) - 2) // 2)]
    else:
        cap = 1000
        units = n_units or sorted({max(10, min(cap, n // 4)), max(10, min(cap, n // 2))})
        grid = {"n_units": [int(u) for u in units], "scale": [float(s) for s in scales]}
        geometry = "random"
    fitted = readout.fit(X, y, box, geometry=geometry, grid=grid, rconds=rconds, seed=seed)
    (W, b), (c, c0) = _layers_of(fitted.network)
    state = {"W0": W, "b0": b, "W1": c, "b1": c0}
    return _Fitted(state, {"activation": "tanh"},
                   f"[{d}, {W.shape[0]}, 1] tanh network, {geometry} hidden layer {fitted.params}, output layer solved "
                   f"by truncated SVD (rcond {fitted.rcond:g}, rank {fitted.rank}); chosen on an inner validation "
                   f"split")


def _mlp_predictor(state, params):
    layers = _state_layers(state)
    mean, std = state.get("input_mean"), state.get("input_std")
    return lambda X: _mlp_predict(layers, params["activation"], X, mean, std)


# -- RBF
def _fit_rbf(X, y, *, seed, progress, kernels=(("thin_plate_spline", 2), ("cubic", 2), ("quintic", 2),
                                               ("quintic", 3))):
    from pml.approx.classical import RBF

    n, d = X.shape
    box = _box(X)
    tr, va = _inner(n, seed)
    scores = {}
    for kernel, degree in kernels:
        kernel, degree = str(kernel), int(degree)
        if tr.size <= math.comb(d + degree, degree):
            continue
        m = RBF(kernel, degree).fit(X[tr], y[tr], box)
        scores[(kernel, degree)] = float(np.sqrt(np.mean((m.predict(X[va]) - y[va]) ** 2)))
    if not scores:
        raise FitError(f"rbf: too few rows ({n}) for a polynomial tail in d = {d}")
    kernel, degree = min(scores, key=scores.get)
    m = RBF(kernel, degree).fit(X, y, box)
    return _Fitted({"X": X, "y": y, "box": box}, {"kernel": kernel, "degree": degree},
                   f"{kernel} kernel with a degree-{degree} polynomial tail through {n} points (kernel chosen on an "
                   f"inner validation split)", m.predict)


def _rbf_predictor(state, params):
    from pml.approx.classical import RBF

    return RBF(params["kernel"], int(params["degree"])).fit(state["X"], state["y"], state["box"]).predict


# -- simplex
def _fit_simplex(X, y, *, seed, progress):
    from pml.approx.simplex import SimplexInterpolator

    interp = SimplexInterpolator(X, y)
    return _Fitted({"X": X, "y": y}, {}, f"linear simplex interpolation through {X.shape[0]} points "
                                         f"(Delaunay triangulation for d >= 2)", lambda Q: interp(Q).values)


def _simplex_predictor(state, params):
    from pml.approx.simplex import SimplexInterpolator

    interp = SimplexInterpolator(state["X"], state["y"])
    return lambda Q: interp(Q).values


# -- LM multi-stage networks
def _fit_lm(X, y, *, seed, progress, n_stages=2, width=None, depth=2, max_iter=None, time_limit=60.0,
            init_scale=None):
    from pml.nn import multistage

    n, d = X.shape
    width = width or {1: 20, 2: 40}.get(d, 60)
    max_iter = list(max_iter) if max_iter is not None else ([300, 600] if d <= 2 else [100, 300])
    if len(max_iter) < n_stages:
        max_iter = max_iter + [max_iter[-1]] * (n_stages - len(max_iter))
    init_scale = init_scale if init_scale is not None else {1: 1.0, 2: 0.3}.get(d, 0.1)
    bar = _bar(progress, int(sum(max_iter[:n_stages])), "lm-multistage: LM iterations")

    def tick(row):
        bar.update(1)
        return False

    trainers = [multistage.default_trainer(int(it), time_limit=time_limit, callback=tick) for it in max_iter[:n_stages]]
    try:
        res = multistage.fit(X, y, n_stages=int(n_stages), width=width, depth=int(depth), trainer=trainers,
                             ranges=_box(X), init_scale=float(init_scale), seed=seed)
    finally:
        bar.close()
    layers = _layers_of(res.network())
    stages = "; ".join(f"stage {k + 1}: {s.result.n_iter} it ({s.result.stop_reason})" for k, s in
                       enumerate(res.stages))
    return _Fitted(_layers_state(layers), {"activation": "tanh"},
                   f"{len(res.stages)} boosted [{d}, {width}, 1]-stage tanh networks (depth {depth}) trained by "
                   f"Levenberg-Marquardt, merged into one network with {sum(W.size + b.size for W, b in layers)} "
                   f"parameters; {stages}")


# -- Adam MLPs
def _fit_adam(activation):
    def fitter(X, y, *, seed, progress, width=64, depth=3, n_steps=5000, lr=1e-3):
        import torch  # noqa: F401  (imported before limit_threads, so that its pool is limited too)

        from pml.nn import networks, training
        from pml.threads import limit_threads

        n, d = X.shape
        model = networks.make_mlp(d, int(width), int(depth), activation, seed=seed)
        cfg = training.TrainConfig(n_steps=int(n_steps), lr=float(lr), batch_size=min(n, 10_000),
                                   selection="final_test", test_every_step=False, log_every=max(1, int(n_steps)))
        with limit_threads(1):  # small networks: one thread is fastest on few cores (pml.threads)
            res = training.train(model, X, y, X[:1], y[:1], cfg, progress=bool(progress))
        state = _layers_state(_layers_of(model))
        state["input_mean"], state["input_std"] = np.asarray(res.input_mean), np.asarray(res.input_std)
        return _Fitted(state, {"activation": activation},
                       f"{activation} MLP width {width}, depth {depth}, Adam lr {lr:g}, {res.n_steps_done} steps "
                       f"(inputs standardised)")

    return fitter


METHODS: dict[str, MethodSpec] = {
    "poly": MethodSpec("poly", "least-squares", "global polynomial of validated total degree (Chebyshev basis)",
                       _fit_poly, _poly_predictor,
                       {"max_degree": None, "rcond": 1e-15, "patience": 4, "max_coefficients": 2000},
                       lambda d: 3),
    "spline": MethodSpec("spline", "interpolant", "interpolating B-spline of validated order (d = 1)", _fit_spline,
                         _spline_predictor, {"orders": (1, 3, 5, 7)}, lambda d: 3, d_max=1),
    "readout": MethodSpec("readout", "least-squares",
                          "one-hidden-layer tanh network with an exactly solved output layer", _fit_readout,
                          _mlp_predictor, {"n_units": None, "scales": (0.1, 0.3, 1.0),
                                           "rconds": (1e-12, 1e-13, 1e-14, 1e-15, 1e-16)}, lambda d: 5),
    "rbf": MethodSpec("rbf", "interpolant", "polyharmonic RBF interpolation with a polynomial tail", _fit_rbf,
                      _rbf_predictor, {"kernels": (("thin_plate_spline", 2), ("cubic", 2), ("quintic", 2),
                                                   ("quintic", 3))},
                      lambda d: math.comb(d + 2, 2) + 3, max_rows=5000),
    "simplex": MethodSpec("simplex", "interpolant", "linear simplex interpolation (NaN outside the convex hull)",
                          _fit_simplex, _simplex_predictor, {}, lambda d: d + 2, d_max=6, max_rows=20_000),
    "lm-multistage": MethodSpec("lm-multistage", "trained",
                                "boosted tanh networks trained by Levenberg-Marquardt, merged", _fit_lm,
                                _mlp_predictor, {"n_stages": 2, "width": None, "depth": 2, "max_iter": None,
                                                 "time_limit": 60.0, "init_scale": None}, lambda d: 10),
    "adam-tanh": MethodSpec("adam-tanh", "trained", "tanh MLP trained with Adam", _fit_adam("tanh"),
                            _mlp_predictor, {"width": 64, "depth": 3, "n_steps": 5000, "lr": 1e-3}, lambda d: 10),
    "adam-relu": MethodSpec("adam-relu", "trained", "ReLU MLP trained with Adam", _fit_adam("relu"),
                            _mlp_predictor, {"width": 64, "depth": 3, "n_steps": 5000, "lr": 1e-3}, lambda d: 10),
}

NOT_FOR_DATA = {
    "chebyshev": "Chebyshev interpolation samples the function at its own nodes: it needs the function, not data "
                 "(use pml.approx.classical.Chebyshev with a callable); for data use 'poly', the least-squares analogue",
}


def method_names() -> list[str]:
    return ["auto", *METHODS]


def _spec(name: str) -> MethodSpec:
    if name in NOT_FOR_DATA:
        raise FitError(f"method {name!r} is not available for data: {NOT_FOR_DATA[name]}")
    if name not in METHODS:
        raise FitError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")
    return METHODS[name]


def _check_method_fits(spec: MethodSpec, n_train: int, d: int, held_out: str = "") -> None:
    if spec.d_max is not None and d > spec.d_max:
        raise FitError(f"method {spec.name!r} works for d <= {spec.d_max} inputs, the data have d = {d}")
    need = spec.min_rows(d)
    if n_train < need:
        raise FitError(f"too few rows for method {spec.name!r}: it needs at least {need} training rows for d = {d}, "
                       f"got {n_train}{held_out}")
    if spec.max_rows is not None and n_train > spec.max_rows:
        raise FitError(f"method {spec.name!r} is limited to {spec.max_rows} training rows (cost grows fast with "
                       f"the number of rows), got {n_train}; use 'poly' or 'readout'")


def _run(spec: MethodSpec, X, y, seed: int, progress: bool, options: dict) -> _Fitted:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise FitError(f"unknown option(s) {unknown} for method {spec.name!r}; valid options: {valid}")
    from pml.threads import limit_threads

    with limit_threads(1):  # small dense algebra: one BLAS thread is fastest on few cores (pml.threads)
        return spec.fitter(X, y, seed=seed, progress=progress, **options)


def _predictor(spec: MethodSpec, fitted: _Fitted):
    return fitted.predict if fitted.predict is not None else spec.predictor(fitted.state, fitted.params)


# ----------------------------------------------------------------------------------------------------- report
ERROR_SOURCES = ("precision limit", "data precision", "generalisation", "optimisation", "architecture",
                 "architecture or noise", "unknown")


def diagnose(kind: str, train: float, val: float, floor: float, data_floor: float | None = None
             ) -> tuple[str, str]:
    """(source, explanation): where the remaining error most likely comes from (paper §1.2's decomposition).

    ``kind`` is the method's kind ("interpolant", "least-squares", "trained"); ``train``/``val`` are relative RMSEs,
    ``floor`` the float64 floor and ``data_floor`` the precision the targets were given to (or None).
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
    """How a model was chosen and how precise it is. Errors are relative RMSE (paper Eq. 1): RMSE / RMS(y)."""

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
               line("method", f"{self.method} ({self.kind})" + (f", chosen by rule {self.rule!r} of the User's Guide"
                                                                 if self.rule else ", as requested")),
               line("why", self.reason)]
        if self.candidates:
            parts = []
            for c in self.candidates:
                if c.get("skipped"):
                    parts.append(f"{c['method']} skipped ({c['skipped']})")
                else:
                    parts.append(f"{c['method']} {_e(c['inner_rel_rmse'])}" + (" <- chosen" if c["method"] ==
                                                                                self.method else ""))
            sub = f" (candidates fitted to at most {MAX_SELECTION_ROWS} rows)" if self.n_train > MAX_SELECTION_ROWS \
                else ""
            out.append(line("candidates", f"relative RMSE on the inner validation split{sub}: " + "; ".join(parts)))
        out.append(line("model", self.details + f" ({self.n_params} numbers, {self.seconds:.1f} s)"))
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


# ------------------------------------------------------------------------------------------------------- model
class FittedModel:
    """A fitted model: ``predict(X)``, ``save(path)``, :meth:`load` (or :func:`load`) and ``report``."""

    def __init__(self, method: str, state: dict[str, np.ndarray], params: dict, input_names: Sequence[str],
                 target_name: str, report: PrecisionReport, predictor=None):
        self.method = method
        self.state = {k: np.asarray(v) for k, v in state.items()}
        self.params = dict(params)
        self.input_names = tuple(input_names)
        self.target_name = str(target_name)
        self.report = report
        self._predict = predictor

    @property
    def dim(self) -> int:
        return len(self.input_names)

    def __repr__(self) -> str:
        return (f"FittedModel(method={self.method!r}, inputs={list(self.input_names)}, target={self.target_name!r}, "
                f"val_rel_rmse={self.report.val_rel_rmse:.2e})")

    def predict(self, X) -> np.ndarray:
        """Predictions at X (n, d), or (n,) when d = 1, as float64 of shape (n,).

        NaN where the method has no prediction (simplex: outside the training data's convex hull)."""
        X = _check_inputs(X, self.input_names, what="X")
        if self._predict is None:
            self._predict = METHODS[self.method].predictor(self.state, self.params)
        return np.asarray(self._predict(X), dtype=np.float64).reshape(-1)

    def _meta(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "pml_version": __version__,
                "method": self.method, "params": self.params, "input_names": list(self.input_names),
                "target_name": self.target_name, "report": self.report.to_dict(), "state_keys": sorted(self.state)}

    def save(self, path) -> Path:
        """Write the model to ``path`` (one ``.npz``; the name is used as given) atomically: a temporary file in the
        same folder is renamed over ``path`` only when complete, so nothing half-written is ever left."""
        path = Path(path)
        arrays = {f"state.{k}": v for k, v in self.state.items()}
        meta = json.dumps(self._meta(), default=_json_default)
        arrays["__meta__"] = np.array(meta)
        from pml.fitting.tables import atomic_write

        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "FittedModel":
        return load(path)


def _json_default(o):
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in a model file")


def load(path) -> FittedModel:
    """Read a model written by :meth:`FittedModel.save`. Raises FileNotFoundError for a missing file and
    :class:`ModelFileError` for a file that is not a pml model or comes from another pml or format version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files") or "__meta__" not in z.files:
                raise ModelFileError(f"{path} is not a pml model file (no pml metadata)")
            meta = json.loads(str(z["__meta__"]))
            arrays = {k[len("state."):]: z[k] for k in z.files if k.startswith("state.")}
    except ModelFileError:
        raise
    except (ValueError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a pml model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a pml model file")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("pml_version") != __version__:
        raise ModelFileError(f"{path} was saved by pml {meta.get('pml_version')} (model format "
                             f"{meta.get('format_version')}); this is pml {__version__} (model format "
                             f"{FORMAT_VERSION}): fit the model again with this version (`pml fit`)")
    method = meta.get("method")
    if method not in METHODS or set(arrays) != set(meta.get("state_keys", [])):
        raise ModelFileError(f"{path} is damaged or incomplete (method {method!r}, arrays {sorted(arrays)})")
    report = PrecisionReport.from_dict(meta["report"])
    return FittedModel(method, arrays, meta["params"], meta["input_names"], meta["target_name"], report)


# ------------------------------------------------------------------------------------------------------ checks
def _check_inputs(X, names: Sequence[str] | None, what: str) -> np.ndarray:
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise FitError(f"{what} is not an array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise FitError(f"{what} must be numeric, got values of type {arr.dtype}") from None
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise FitError(f"{what} must have shape (n, d) with n >= 1 rows, got shape {arr.shape}")
    if names is not None and arr.shape[1] != len(names):
        raise FitError(f"{what} has {arr.shape[1]} columns; the model takes {len(names)} inputs ({', '.join(names)})")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        col = names[j] if names is not None else f"column {j}"
        raise FitError(f"{what} has {int(bad.sum())} NaN or infinite values (first: {arr[i, j]} in {col}, row {i})")
    return arr


def _check_target(y, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise FitError(f"the target {name!r} must be numeric") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.size != n:
        raise FitError(f"the target must have one value per row ({n}), got shape {np.shape(y)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise FitError(f"the target {name!r} has {int(bad.sum())} NaN or infinite values (first: {arr[i]} at row {i})")
    if np.all(arr == arr[0]):
        raise FitError(f"the target {name!r} is constant (every value is {arr[0]!r}): there is nothing to fit, and "
                       "relative errors are undefined" if arr[0] == 0 else
                       f"the target {name!r} is constant (every value is {arr[0]!r}): there is nothing to fit")
    return arr


# --------------------------------------------------------------------------------------------------------- fit
_NOT_PARAMS = ("X", "box", "centre", "half", "input_mean", "input_std")  # data and input maps, not fitted numbers


def fit(X, y, method: str = "auto", *, validation: float = 0.2, seed: int = 0, progress: bool | None = None,
        smooth: bool = True, refit: bool = False, input_names: Sequence[str] | None = None, target_name: str = "y",
        data_floor: float | None = None, **options) -> FittedModel:
    """Fit y = f(X) to high precision and report how precise the fit is (see the module docstring).

    ``X``: (n, d) inputs (or (n,) for d = 1); ``y``: (n,) targets. ``method``: "auto" (the User's Guide rules of
    :mod:`pml.fitting.guide`) or a name of :data:`METHODS`; ``options`` go to that method (e.g. ``max_degree`` for poly).
    ``validation``: fraction of rows held out (0 <= validation < 1), split with ``seed``. ``smooth=False`` tells
    ``auto`` the target has kinks or steps. ``refit=True`` refits on all rows after validation. ``progress``: show
    progress bars on stderr (None: only when stderr is a terminal). ``data_floor``: the relative RMSE to which the
    targets are known, if they were rounded (the CLI computes it from a CSV's digits).
    """
    t0 = time.perf_counter()
    if not isinstance(method, str):
        raise FitError(f"method must be a name; valid methods: {', '.join(method_names())}")
    if method != "auto":
        spec = _spec(method)
    if not (isinstance(validation, (int, float)) and 0 <= validation < 1):
        raise FitError(f"validation must be a fraction in [0, 1), got {validation!r}")
    if isinstance(seed, bool) or int(seed) != seed:
        raise FitError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    X = _check_inputs(X, input_names, what="X")
    n, d = X.shape
    names = tuple(input_names) if input_names is not None else tuple(f"x{j}" for j in range(d))
    y = _check_target(y, n, target_name)
    for j in range(d):
        if np.all(X[:, j] == X[0, j]):
            raise FitError(f"input {names[j]!r} is constant (every value is {X[0, j]!r}): drop it")
    progress = (sys.stderr.isatty() if progress is None else bool(progress))
    tr, va = _split(n, float(validation), [seed, 11])
    held = f" ({va.size} of {n} rows held out for validation)" if va.size else ""

    rule = None
    candidates: list[dict] = []
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
                _check_method_fits(METHODS[name], tr.size, d, held)
                usable.append(name)
            except FitError as exc:
                candidates.append({"method": name, "skipped": str(exc), "inner_rel_rmse": None})
        if not usable:
            raise FitError(f"too few rows: no method of rule {rule.key!r} can be fitted to {tr.size} training "
                           f"rows{held}: " + "; ".join(c["skipped"] for c in candidates))
        if len(usable) == 1:
            chosen = usable[0]
            candidates.append({"method": chosen, "skipped": None, "inner_rel_rmse": None})
        else:
            itr, iva = _inner(tr.size, seed + 1)
            if itr.size > MAX_SELECTION_ROWS:  # compare candidates on a subsample: the ranking, not the best fit
                itr = np.sort(np.random.default_rng([seed, 13]).choice(itr, MAX_SELECTION_ROWS, replace=False))
            bar = _bar(progress, len(usable), "auto: candidates")
            scores = {}
            try:
                for name in usable:
                    bar.set_postfix_str(name)
                    try:
                        _check_method_fits(METHODS[name], itr.size, d, " (inner split for comparing candidates)")
                        f = _run(METHODS[name], X[tr][itr], y[tr][itr], seed, False, {})
                        pred = np.asarray(_predictor(METHODS[name], f)(X[tr][iva]), dtype=np.float64).reshape(-1)
                        s = _finite_rel_rmse(pred, y[tr][iva])
                        scores[name] = s if math.isfinite(s) else math.inf
                        candidates.append({"method": name, "skipped": None, "inner_rel_rmse": s})
                    except FitError as exc:
                        candidates.append({"method": name, "skipped": str(exc), "inner_rel_rmse": None})
                    bar.update(1)
            finally:
                bar.close()
            if not scores:
                raise FitError("no candidate method could be fitted: " + "; ".join(
                    f"{c['method']}: {c['skipped']}" for c in candidates if c["skipped"]))
            chosen = min(scores, key=scores.get)
        spec = METHODS[chosen]
        reason = (f"d = {d}, n = {n} rows, {'smooth' if smooth else 'non-smooth'} target -> rule {rule.key!r} "
                  f"({', '.join(rule.methods)}). {rule.reason}")
    else:
        reason = f"requested: {spec.description}"
    _check_method_fits(spec, tr.size, d, held)

    fitted = _run(spec, X[tr], y[tr], seed, progress, options)
    predict = _predictor(spec, fitted)
    p_tr = np.asarray(predict(X[tr]), dtype=np.float64).reshape(-1)
    train_rel = _finite_rel_rmse(p_tr, y[tr])
    y_rms = float(np.sqrt(np.mean(y**2)))
    if va.size:
        p_va = np.asarray(predict(X[va]), dtype=np.float64).reshape(-1)
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
        fitted = _run(spec, X, y, seed, progress, options)
        predict = _predictor(spec, fitted)
    n_params = int(sum(v.size for k, v in fitted.state.items() if k not in _NOT_PARAMS))
    report = PrecisionReport(
        method=spec.name, requested=method, kind=spec.kind, rule=rule.key if rule else None, reason=reason,
        promise=rule.promise if rule else None, candidates=tuple(candidates), details=fitted.details, n_rows=n,
        n_train=int(tr.size), n_validation=int(va.size), dim=d, input_names=names, target_name=str(target_name),
        y_rms=y_rms, train_rel_rmse=train_rel, val_rel_rmse=val_rel, val_max_rel_err=val_max,
        n_val_nonfinite=n_nonfinite, float64_floor=floor, data_floor=data_floor, error_source=source, diagnosis=why,
        refit=bool(refit and va.size), n_params=n_params, seconds=time.perf_counter() - t0, seed=seed)
    return FittedModel(spec.name, fitted.state, fitted.params, names, target_name, report, predict)
