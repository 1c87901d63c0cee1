"""The methods :func:`pml.fitting.fit` can use (:data:`METHODS`, one :class:`MethodSpec` each): how each is fitted, how
its predictor is rebuilt from saved arrays, and its limits. Paper: Section 5 and Fig. 10. Each method picks its own
hyper-parameters on an inner split of the training rows. Chebyshev interpolation needs the function, not data, and is
not offered."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any, Callable

import numpy as np

from pml.fitting.checks import FitError, distinct_rows, split_rows
from pml.fitting.transforms import IDENTITY, Transform, of_params

INNER_FRACTION = 0.2  # the inner validation split that chooses hyper-parameters and candidates
MAX_SELECTION_ROWS = 5000  # auto compares its candidates on at most this many training rows


# ------------------------------------------------------------------------------------------------------ helpers
def _data_box(X: np.ndarray) -> np.ndarray:
    lo, hi = X.min(axis=0), X.max(axis=0)
    return np.stack([lo, np.where(hi > lo, hi, lo + 1.0)], axis=1)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int | None, desc: str):
    """A tqdm bar on stderr when ``enabled``, else an object that ignores updates."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm  # imported only when a bar is shown

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _candidate_bar(enabled: bool, desc: str):
    """A bar of :func:`progress_bar` and ``tick(label, err)``, which advances it and shows a candidate's validation
    error: the callback of the methods that try candidates (kernel, deep-lm)."""
    bar = progress_bar(enabled, None, desc)

    def tick(label: str, err: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{label}: validation {err:.1e}")

    return bar, tick


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


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What a method's fitter returns: saved arrays, parameters, a description and (optionally) a live predictor."""

    state: dict[str, np.ndarray]
    params: dict[str, Any]
    details: str
    predict: Callable[[np.ndarray], np.ndarray] | None = None  # a live predictor; None: build from the state
    score: float | None = None  # relative RMSE on the validation_data a method was given (before any final refit)


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method ``fit`` can use: how to fit it, how to rebuild its predictor from saved arrays, and its limits."""

    name: str
    kind: str
    description: str
    fitter: Callable[..., Fitted]
    predictor: Callable[[dict, dict], Callable[[np.ndarray], np.ndarray]]
    options: dict[str, Any]
    min_rows: Callable[[int], int]
    d_max: int | None = None
    max_rows: int | None = None


def inner_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validate) rows of the inner split that chooses hyper-parameters and candidates."""
    return split_rows(n, INNER_FRACTION, [seed, 17])


# -- cost models of the time-limited fits: seconds = flops x (seconds per flop, measured here and now)
SVD_BYTES = 40  # bytes per entry of an (rows x columns) least-squares matrix: the matrix, its columns, U, workspace


def svd_flops(rows: float, cols: float) -> float:
    """Floating-point operations of a thin SVD of a rows x cols matrix (rows >= cols; LAPACK's gesdd, rounded up)."""
    return 6.0 * rows * cols * cols + 20.0 * float(cols) ** 3


def seconds_per_flop() -> float:
    """Seconds per floating-point operation of an SVD in this process now (its threads, the machine's load): the
    median of five timed 1000 x 200 SVDs (about 20 ms each) after one untimed."""
    import scipy.linalg

    A = np.random.default_rng(0).standard_normal((1000, 200))
    times = []
    for _ in range(6):
        t = time.perf_counter()
        scipy.linalg.svd(A, full_matrices=False, check_finite=False, lapack_driver="gesdd")
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[2] / svd_flops(1000, 200)


JACOBIAN_METHODS = ("deep-lm", "lm-multistage")  # the methods that take per-sample Jacobians (torch.func)


def warm_up(method: str) -> None:
    """Import what ``method`` needs (and take one tiny Jacobian for the LM methods), so that a time limit pays these
    one-off costs before it measures the method's share."""
    if method in ("poly", "rbf"):
        import pml.approx.classical  # noqa: F401
    elif method == "kernel":
        import pml.approx.kernel  # noqa: F401
    elif method == "readout":
        import pml.nn.readout  # noqa: F401
    elif method in JACOBIAN_METHODS:
        import torch
        from torch.func import jacrev, vmap

        import pml.nn.deep
        import pml.nn.multistage  # noqa: F401

        vmap(jacrev(lambda w, x: torch.tanh(w * x).sum()), in_dims=(None, 0))(torch.ones(2), torch.ones(3, 2))


# -- poly
def _poly_flops(rows: int, cols: int, d: int) -> float:
    return svd_flops(rows, cols) + 60.0 * rows * cols * d  # the solve, building the basis and predicting with it


def _fit_poly(X, y, *, seed, progress, max_degree=None, rcond=1e-15, patience=4, max_coefficients=2000,
              time_limit=None, max_bytes=None):
    t0 = time.perf_counter()  # (the import counts in the time limit)
    from pml.approx.classical import PolynomialLSQ

    n, d = X.shape
    box = _data_box(X)
    tr, va = inner_split(n, seed)
    max_degree = (100 if d == 1 else 60) if max_degree is None else int(max_degree)
    cap = min(int(max_coefficients), tr.size)
    if max_bytes is not None:  # the final fit's basis on all n rows is the largest matrix
        cap = min(cap, int(max_bytes) // (SVD_BYTES * n))
    scores: dict[int, float] = {}
    best, since = None, 0
    per_flop, stopped = None, ""
    bar = progress_bar(progress, None, "poly: degree")
    try:
        for k in range(0, max_degree + 1):
            cols = math.comb(d + k, k)
            if cols > cap:
                break
            if time_limit is not None and per_flop is not None:
                # this degree and, should it win, its fit on all rows must end within the limit
                need = per_flop * (_poly_flops(tr.size, cols, d) + _poly_flops(n, cols, d))
                if time.perf_counter() - t0 + need > time_limit:
                    stopped = f"; the time limit ({time_limit:.3g} s) stopped the search before degree {k}"
                    break
            start = time.perf_counter()
            m = PolynomialLSQ(rcond).fit(X[tr], y[tr], box, degree=k)
            scores[k] = float(np.sqrt(np.mean((m.predict(X[va]) - y[va]) ** 2)))
            per_flop = (time.perf_counter() - start) / _poly_flops(tr.size, cols, d)
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
        raise FitError(f"poly: too few rows ({n}) for any polynomial" if cap >= 1 or max_bytes is None else
                       f"poly: {n} rows do not fit in {max_bytes / 2**30:.2g} GiB of memory")
    m = PolynomialLSQ(rcond).fit(X, y, box, degree=best)
    return Fitted({"coef": m.coef, "centre": m.centre, "half": m.half}, {"degree": best, "rcond": rcond},
                   f"total degree {best} ({m.coef.size} coefficients) chosen on an inner validation split "
                   f"(degrees 0-{max(scores)} tried{stopped})", m.predict)


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
        raise FitError(f"spline: the input has repeated values (e.g. {float(uniq[counts > 1][0])!r}); an interpolating "
                       "spline needs distinct x. Average the repeats or use method='poly'")
    tr, va = inner_split(x.size, seed)
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
    return Fitted({"t": s.t, "c": s.c}, {"order": int(k)},
                   f"order {k} interpolating spline through {x.size} points, order chosen on an inner validation "
                   f"split from {sorted(scores)}")


def _spline_predictor(state, params):
    from scipy.interpolate import BSpline

    s = BSpline(state["t"], state["c"], int(params["order"]), extrapolate=True)
    return lambda X: s(X[:, 0])


# -- readout network
def _readout_flops(rows: int, units: int, d: int, combos: int) -> float:
    """readout.fit's cost: a feature matrix and an SVD per combination on the inner-fit rows, then one on all rows."""
    def one(r: float) -> float:
        return svd_flops(r, units + 1) + 40.0 * r * units * d

    return combos * one((1 - INNER_FRACTION) * rows) + one(rows)


def _fit_readout(X, y, *, seed, progress, n_units=None, scales=(0.1, 0.3, 1.0),
                 rconds=(1e-12, 1e-13, 1e-14, 1e-15, 1e-16), time_limit=None, max_bytes=None):
    t0 = time.perf_counter()  # (the import counts in the time limit)
    from pml.nn import readout

    n, d = X.shape
    box = _data_box(X)
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
    limited = ""
    if time_limit is None and max_bytes is None:
        fitted = readout.fit(X, y, box, geometry=geometry, grid=grid, rconds=rconds, seed=seed)
    else:
        fitted, limited = _readout_within(X, y, box, geometry, grid, rconds, seed, t0, time_limit, max_bytes)
    (W, b), (c, c0) = _layers_of(fitted.network)
    state = {"W0": W, "b0": b, "W1": c, "b1": c0}
    return Fitted(state, {"activation": "tanh"},
                   f"[{d}, {W.shape[0]}, 1] tanh network, {geometry} hidden layer {fitted.params}, output layer solved "
                   f"by truncated SVD (rcond {fitted.rcond:g}, rank {fitted.rank}); chosen on an inner validation "
                   f"split{limited}")


def _readout_within(X, y, box, geometry, grid, rconds, seed, t0, time_limit, max_bytes):
    """readout.fit once per hidden-layer size, smallest first, while its modelled cost fits the time and memory left;
    the smallest validation error wins. Returns (the fit, a note on what the limits cut)."""
    from pml.nn import readout

    n, d = X.shape
    limit = math.inf if time_limit is None else float(time_limit)
    units = sorted(int(u) for u in grid["n_units"])
    if max_bytes is not None:
        units = sorted({min(u, int(max_bytes) // (SVD_BYTES * n) - 1) for u in units})
    combos = math.prod(len(v) for k, v in grid.items() if k != "n_units")
    per_flop = seconds_per_flop() if math.isfinite(limit) else 0.0
    best, notes = None, []

    def fits(m: int) -> bool:
        return per_flop * _readout_flops(n, m, d, combos) <= limit - (time.perf_counter() - t0)

    for u in units:
        if not fits(u):
            if best is not None:
                notes.append(f"{u} units skipped (the time limit)")
                break
            while geometry == "random" and u > 2 and not fits(u):  # (1D's uniform layers are small)
                u = int(u * 0.8)
            notes.append(f"{u} units at most within the time limit ({time_limit:.3g} s)")
        if u < 2:
            break
        fitted = readout.fit(X, y, box, geometry=geometry, grid={**grid, "n_units": [u]}, rconds=rconds, seed=seed)
        if best is None or fitted.val_rmse < best.val_rmse:
            best = fitted
    if best is None:
        why = (f"the time limit ({time_limit:.3g} s)" if math.isfinite(limit) else
               f"{max_bytes / 2**30:.2g} GiB of memory")
        raise FitError(f"readout: not even a network of 2 units fits {n} rows within {why}")
    return best, (f" ({'; '.join(notes)})" if notes else "")


def _mlp_predictor(state, params):
    layers = _state_layers(state)
    mean, std = state.get("input_mean"), state.get("input_std")
    return lambda X: _mlp_predict(layers, params["activation"], X, mean, std)


# -- RBF
def _fit_rbf(X, y, *, seed, progress, kernels=(("thin_plate_spline", 2), ("cubic", 2), ("quintic", 2),
                                               ("quintic", 3))):
    from pml.approx.classical import RBF

    n, d = X.shape
    box = _data_box(X)
    tr, va = inner_split(n, seed)
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
    return Fitted({"X": X, "y": y, "box": box}, {"kernel": kernel, "degree": degree},
                   f"{kernel} kernel with a degree-{degree} polynomial tail through {n} points (kernel chosen on an "
                   f"inner validation split)", m.predict)


def _rbf_predictor(state, params):
    from pml.approx.classical import RBF

    return RBF(params["kernel"], int(params["degree"])).fit(state["X"], state["y"], state["box"]).predict


# -- simplex
def _fit_simplex(X, y, *, seed, progress):
    from pml.approx.simplex import SimplexInterpolator

    X, y = distinct_rows(X, y, "simplex")  # repeated points break the triangulation; conflicting ones are refused
    interp = SimplexInterpolator(X, y)
    return Fitted({"X": X, "y": y}, {}, f"linear simplex interpolation through {X.shape[0]} points "
                                         f"(Delaunay triangulation for d >= 2)", lambda Q: interp(Q).values)


def _simplex_predictor(state, params):
    from pml.approx.simplex import SimplexInterpolator

    interp = SimplexInterpolator(state["X"], state["y"])
    return lambda Q: interp(Q).values


# -- kernel (Gaussian-process mean)
def _fit_kernel(X, y, *, seed, progress, kernels=("rbf", "matern52"), n_restarts=3, hyper_rows=1000, max_rows=8000,
                time_limit=None, validation_data=None, score_of=None, predict_rows=0):
    from pml.approx import kernel

    bar, tick = _candidate_bar(progress, "kernel: starts")
    Xv, yv = validation_data if validation_data is not None else (None, None)
    try:
        m = kernel.fit(X, y, box=_data_box(X), kernels=tuple(kernels), n_restarts=int(n_restarts),
                       hyper_rows=int(hyper_rows), max_rows=int(max_rows), seed=seed, time_limit=time_limit,
                       callback=tick, X_val=Xv, y_val=yv, score=score_of, predict_rows=int(predict_rows))
    finally:
        bar.close()
    sub = f" (a seeded subsample of {m.info['rows']} rows)" if m.info["subsampled"] else ""
    return Fitted(m.state(), {"kernel": m.kernel},
                  f"{m.kernel} kernel, length scales {np.array2string(m.lengths, precision=3)} (inputs scaled to "
                  f"[-1, 1]) by marginal likelihood, nugget {m.nugget:.0e}; kernel, start and nugget chosen on a "
                  f"validation split ({m.info['n_candidates']} candidates); exact Cholesky solve{sub}", m.predict,
                  m.info["val_rel_rmse"])


def _kernel_predictor(state, params):
    from pml.approx import kernel

    return kernel.KernelModel.from_state(params["kernel"], state).predict


# -- deep LM networks
def _fit_deep(X, y, *, seed, progress, depths=(3, 4), n_stages=2, params_per_row=0.25, max_params=1200,
              time_limit=120.0, validation_data=None, score_of=None):
    from pml.nn import deep

    bar, tick = _candidate_bar(progress, "deep-lm: checks")
    Xv, yv = validation_data if validation_data is not None else (None, None)
    try:
        res = deep.fit(X, y, box=_data_box(X), depths=tuple(int(k) for k in depths), n_stages=int(n_stages),
                       params_per_row=float(params_per_row), max_params=int(max_params), seed=seed,
                       time_limit=float(time_limit), callback=tick, X_val=Xv, y_val=yv)
    except deep.TooSlow as exc:
        raise FitError(f"deep-lm: {exc}") from None
    finally:
        bar.close()
    state = _layers_state(res.layers())
    state["input_mean"], state["input_std"] = res.centre, res.half
    archs = ", ".join(f"depth {h['depth']} width {h['width']}: {h['val_rel_rmse']:.1e}" for h in res.history
                      if h["stage"] == 1)
    score = res.val_rel_rmse
    if score_of is not None:  # the network never trains on the validation rows: score its predictions there
        score = float(score_of(_mlp_predictor(state, {"activation": "tanh"})(Xv)))
    return Fitted(state, {"activation": "tanh"},
                  f"{res.n_stages} tanh network(s) of depth {res.depth}, width {res.width} (inputs scaled to [-1, 1]) "
                  f"trained by Levenberg-Marquardt, merged into one "
                  f"network; architecture and stopping on a validation split ({archs})", None, score)


# -- LM multi-stage networks
def _fit_lm(X, y, *, seed, progress, n_stages=2, width=None, depth=2, max_iter=None, time_limit=60.0,
            init_scale=None, time_budget=None):
    from pml.nn import multistage

    t0 = time.perf_counter()
    n, d = X.shape
    width = width or {1: 20, 2: 40}.get(d, 60)
    max_iter = list(max_iter) if max_iter is not None else ([300, 600] if d <= 2 else [100, 300])
    if len(max_iter) < n_stages:
        max_iter = max_iter + [max_iter[-1]] * (n_stages - len(max_iter))
    init_scale = init_scale if init_scale is not None else {1: 1.0, 2: 0.3}.get(d, 0.1)
    box, sub = _data_box(X), ""
    deadline = None
    if time_budget is not None:  # seconds for the whole fit: stages, frequency estimates and the rest
        deadline = t0 + float(time_budget)
        if int(n_stages) > 1:  # each later stage starts from a frequency estimate whose cost grows with the rows
            probe = min(n, 200)
            start = time.perf_counter()
            multistage.dominant_frequency(X[:probe], y[:probe], seed=seed)
            per_row = (time.perf_counter() - start) / probe
            rows = max(int(0.25 * float(time_budget) / ((int(n_stages) - 1) * max(per_row, 1e-9))), 10 * (d + 2))
            if rows < n:
                keep = np.sort(np.random.default_rng([seed, 43]).choice(n, rows, replace=False))
                X, y = X[keep], y[keep]
                sub = f"; fitted to a seeded subsample of {rows} of the {n} rows (the time limit)"
        time_limit = max((deadline - time.perf_counter()) / int(n_stages), 1e-3)  # per stage
    bar = progress_bar(progress, int(sum(max_iter[:n_stages])), "lm-multistage: LM iterations")
    last = {"time": time.perf_counter()}

    def tick(row):
        bar.update(1)
        now = time.perf_counter()  # stop before an iteration that would end past the deadline (the last one's
        took, last["time"] = now - last["time"], now  # duration predicts the next's)
        return deadline is not None and now + took > deadline

    trainers = [multistage.default_trainer(int(it), time_limit=time_limit, callback=tick) for it in max_iter[:n_stages]]
    try:
        res = multistage.fit(X, y, n_stages=int(n_stages), width=width, depth=int(depth), trainer=trainers,
                             ranges=box, init_scale=float(init_scale), seed=seed)
    finally:
        bar.close()
    layers = _layers_of(res.network())
    stages = "; ".join(f"stage {k + 1}: {s.result.n_iter} it ({s.result.stop_reason})" for k, s in
                       enumerate(res.stages))
    return Fitted(_layers_state(layers), {"activation": "tanh"},
                   f"{len(res.stages)} boosted [{d}, {width}, 1]-stage tanh networks (depth {depth}) trained by "
                   f"Levenberg-Marquardt, merged into one network with {sum(W.size + b.size for W, b in layers)} "
                   f"parameters; {stages}{sub}")


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
        return Fitted(state, {"activation": activation},
                       f"{activation} MLP width {width}, depth {depth}, Adam lr {lr:g}, {res.n_steps_done} steps "
                       f"(inputs standardised)")

    return fitter


METHODS: dict[str, MethodSpec] = {
    "poly": MethodSpec("poly", "least-squares", "global polynomial of validated total degree (Chebyshev basis)",
                       _fit_poly, _poly_predictor,
                       {"max_degree": None, "rcond": 1e-15, "patience": 4, "max_coefficients": 2000,
                        "time_limit": None, "max_bytes": None},
                       lambda d: 3),
    "spline": MethodSpec("spline", "interpolant", "interpolating B-spline of validated order (d = 1)", _fit_spline,
                         _spline_predictor, {"orders": (1, 3, 5, 7)}, lambda d: 3, d_max=1),
    "readout": MethodSpec("readout", "least-squares",
                          "one-hidden-layer tanh network with an exactly solved output layer", _fit_readout,
                          _mlp_predictor, {"n_units": None, "scales": (0.1, 0.3, 1.0),
                                           "rconds": (1e-12, 1e-13, 1e-14, 1e-15, 1e-16), "time_limit": None,
                                           "max_bytes": None}, lambda d: 5),
    "rbf": MethodSpec("rbf", "interpolant", "polyharmonic RBF interpolation with a polynomial tail", _fit_rbf,
                      _rbf_predictor, {"kernels": (("thin_plate_spline", 2), ("cubic", 2), ("quintic", 2),
                                                   ("quintic", 3))},
                      lambda d: math.comb(d + 2, 2) + 3, max_rows=5000),
    "simplex": MethodSpec("simplex", "interpolant", "linear simplex interpolation (NaN outside the convex hull)",
                          _fit_simplex, _simplex_predictor, {}, lambda d: d + 2, d_max=6, max_rows=20_000),
    "kernel": MethodSpec("kernel", "interpolant",
                         "Gaussian-process mean with one learned length scale per input, exact solve", _fit_kernel,
                         _kernel_predictor, {"kernels": ("rbf", "matern52"), "n_restarts": 3, "hyper_rows": 1000,
                                             "max_rows": 8000, "time_limit": None, "predict_rows": 0},
                         lambda d: 10),
    "deep-lm": MethodSpec("deep-lm", "trained", "tanh network of depth 3-4 trained by Levenberg-Marquardt",
                          _fit_deep, _mlp_predictor, {"depths": (3, 4), "n_stages": 2, "params_per_row": 0.25,
                                                      "max_params": 1200, "time_limit": 120.0},
                          lambda d: 40),
    "lm-multistage": MethodSpec("lm-multistage", "trained",
                                "boosted tanh networks trained by Levenberg-Marquardt, merged", _fit_lm,
                                _mlp_predictor, {"n_stages": 2, "width": None, "depth": 2, "max_iter": None,
                                                 "time_limit": 60.0, "init_scale": None, "time_budget": None},
                                lambda d: 10),
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
    """Every name ``fit`` accepts as ``method``: "auto" and the keys of :data:`METHODS`."""
    return ["auto", *METHODS]


def method_spec(name: str) -> MethodSpec:
    """The method called ``name``; :class:`FitError` naming the valid ones for an unknown name."""
    if name in NOT_FOR_DATA:
        raise FitError(f"method {name!r} is not available for data: {NOT_FOR_DATA[name]}")
    if name not in METHODS:
        raise FitError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")
    return METHODS[name]


def check_method_fits(spec: MethodSpec, n_train: int, d: int, held_out: str = "") -> None:
    """:class:`FitError` unless ``spec`` can be fitted to ``n_train`` rows of ``d`` inputs."""
    if spec.d_max is not None and d > spec.d_max:
        raise FitError(f"method {spec.name!r} works for d <= {spec.d_max} inputs, the data have d = {d}")
    need = spec.min_rows(d)
    if n_train < need:
        raise FitError(f"too few rows for method {spec.name!r}: it needs at least {need} training rows for d = {d}, "
                       f"got {n_train}{held_out}")
    if spec.max_rows is not None and n_train > spec.max_rows:
        raise FitError(f"method {spec.name!r} is limited to {spec.max_rows} training rows (cost grows fast with "
                       f"the number of rows), got {n_train}; use 'poly' or 'readout'")


def transformed(spec: MethodSpec, fitted: Fitted, transform: Transform) -> Fitted:
    """``fitted`` (of ``g(y)`` against ``h(x)``) as a fit of y against x: the transform joins its parameters (so that
    a saved model predicts y) and its predictor maps back."""
    if transform.is_identity:
        return fitted
    params = {**fitted.params, "transform": transform.to_dict()}
    inner = fitted.predict if fitted.predict is not None else spec.predictor(fitted.state, fitted.params)
    return dataclasses.replace(fitted, params=params, predict=transform.wrap(inner),
                               details=f"fitted to {transform.name}: {fitted.details}")


def run_method(spec: MethodSpec, X, y, seed: int, progress: bool, options: dict,
               transform: Transform = IDENTITY) -> Fitted:
    """Fit ``spec`` to (X, y) with its ``options`` (unknown ones are a :class:`FitError`), one BLAS thread; with a
    ``transform``, to ``g(y)`` against ``h(x)`` (:mod:`pml.fitting.transforms`), predicting y."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise FitError(f"unknown option(s) {unknown} for method {spec.name!r}; valid options: {valid}")
    from pml.threads import limit_threads

    with limit_threads(1):  # small dense algebra: one BLAS thread is fastest on few cores (pml.threads)
        try:
            if not transform.is_identity:
                with np.errstate(all="ignore"):
                    Xt, yt = transform.inputs(X), transform.forward(y)
                return transformed(spec, spec.fitter(Xt, yt, seed=seed, progress=progress, **options), transform)
            return spec.fitter(X, y, seed=seed, progress=progress, **options)
        except FitError:
            raise
        except (np.linalg.LinAlgError, ArithmeticError, ValueError, RuntimeError) as exc:  # e.g. QhullError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise FitError(f"method {spec.name!r} failed on these data ({type(exc).__name__}: {first}); the inputs "
                           "may be degenerate (points on a line or plane, repeated rows): try another method") from exc


def rebuild_predictor(spec: MethodSpec, state: dict, params: dict):
    """The predictor of a saved model: ``spec``'s, mapped back through the transform in ``params`` if any."""
    predict = spec.predictor(state, params)
    return of_params(params).wrap(predict)


def predictor_of(spec: MethodSpec, fitted: Fitted):
    """The fitted model's predictor: the live one, or one rebuilt from its saved arrays."""
    return fitted.predict if fitted.predict is not None else rebuild_predictor(spec, fitted.state, fitted.params)
