"""Fit benchmark: ``pml fit`` (auto) against the tools a user would pick instead, on 3-4 dimensional data (paper §5).

Peers, given the same rows: ``sklearn-gp`` (scikit-learn's ``GaussianProcessRegressor``, one length scale per input, on
a seeded subsample beyond ``gp_max_rows``) and ``lm-net`` (a depth-3 width-20 tanh network trained by
:func:`pml.nn.lm.train` for ``lm_seconds``). Every method is scored by the relative RMSE (Eq. 1) on 10^4 fresh points of
the central 80% of the box. scikit-learn is needed only here (the ``bench`` extra)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from pml import data, equations

__all__ = ["CASES", "format", "run", "run_case"]

CASES = (("I.12.4", 3000), ("III.15.12", 3000), ("I.30.5", 3000), ("I.29.16", 3000), ("I.8.14", 12_000))
N_TEST = 10_000
METHODS = ("auto", "sklearn-gp", "lm-net")


def _case_data(eq_id: str, n: int, seed: int):
    eq = equations.get(eq_id)
    box = np.asarray(eq.ranges, dtype=np.float64)
    X = data.sample_uniform(eq.ranges, n, np.random.default_rng([seed, n, 1]))
    lo, hi = box[:, 0] + 0.1 * (box[:, 1] - box[:, 0]), box[:, 1] - 0.1 * (box[:, 1] - box[:, 0])
    Xt = data.sample_uniform(tuple(zip(lo, hi)), N_TEST, np.random.default_rng([seed, n, 2]))
    with np.errstate(all="ignore"):
        return X, eq.func(X), Xt, eq.func(Xt), box


def _rel(pred, y) -> float:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.mean((pred - y) ** 2) / np.mean(y**2)))


def _auto(X, y, Xt, box, seed, time_limit, progress):
    import pml
    from pml.fitting.transforms import label

    model = pml.fit(X, y, seed=seed, time_limit=time_limit, progress=progress)
    names = [label(c["method"], c["transform"]) for c in model.report.candidates]
    tried = "; ".join(f"{name} {c['inner_rel_rmse']:.1e}" for name, c in zip(names, model.report.candidates)
                      if c["skipped"] is None)
    return model.predict(Xt), f"{label(model.method, model.report.transform)} (validation: {tried})"


def _sklearn_gp(X, y, Xt, box, seed, gp_max_rows, restarts):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    centre, half = box.mean(axis=1), (box[:, 1] - box[:, 0]) / 2
    rows = np.arange(X.shape[0])
    if rows.size > gp_max_rows:
        rows = np.sort(np.random.default_rng([seed, 5]).choice(rows, gp_max_rows, replace=False))
    d = X.shape[1]
    kernel = ConstantKernel(1.0) * RBF(length_scale=np.ones(d), length_scale_bounds=(1e-3, 1e3))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit((X[rows] - centre) / half, y[rows])
    return gp.predict((Xt - centre) / half), f"{rows.size} rows"


def _lm_net(X, y, Xt, box, seed, seconds):
    import torch

    from pml.nn import lm, networks

    centre, half = box.mean(axis=1), (box[:, 1] - box[:, 0]) / 2
    y_mean, y_scale = float(np.mean(y)), float(np.std(y))
    net = networks.make_mlp(X.shape[1], 20, 3, "tanh", seed=seed)
    res = lm.train(net, (X - centre) / half, (y - y_mean) / y_scale, max_iter=10**6, time_limit=float(seconds))
    with torch.no_grad():
        p = net(torch.from_numpy((Xt - centre) / half)).reshape(-1).numpy()
    return p * y_scale + y_mean, f"{res.n_iter} LM iterations ({res.stop_reason})"


def run_case(eq_id: str, n: int, methods=METHODS, *, seed: int = 0, time_limit: float = 600.0,
             lm_seconds: float = 150.0, gp_max_rows: int = 3000, gp_restarts: int = 0,
             progress: bool = False) -> list[dict]:
    """The rows of one case: one per method, with ``case``, ``method``, ``rel_rmse``, ``seconds``, ``note``."""
    X, y, Xt, yt, box = _case_data(eq_id, n, seed)
    out = []
    for method in methods:
        t0 = time.perf_counter()
        if method == "auto":
            pred, note = _auto(X, y, Xt, box, seed, time_limit, progress)
        elif method == "sklearn-gp":
            pred, note = _sklearn_gp(X, y, Xt, box, seed, gp_max_rows, gp_restarts)
        elif method == "lm-net":
            pred, note = _lm_net(X, y, Xt, box, seed, lm_seconds)
        else:
            raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
        out.append({"case": eq_id, "n": int(n), "method": method, "rel_rmse": _rel(pred, yt),
                    "seconds": time.perf_counter() - t0, "note": note})
    return out


def run(cases=CASES, methods=METHODS, *, seed: int = 0, time_limit: float = 600.0, lm_seconds: float | None = None,
        gp_max_rows: int = 3000, progress: bool = False) -> list[dict]:
    """Every method on every case, one row per (case, method); ``time_limit`` is pml's budget per fit."""
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    lm_seconds = min(150.0, float(time_limit)) if lm_seconds is None else float(lm_seconds)
    rows = []
    for eq_id, n in cases:
        rows += run_case(eq_id, n, methods, seed=seed, time_limit=time_limit, lm_seconds=lm_seconds,
                         gp_max_rows=gp_max_rows, progress=progress)
    return rows


def format(rows: list[dict]) -> str:
    """One line per case: each method's relative test RMSE and seconds, and auto's ratio to the best peer."""
    cases = list(dict.fromkeys((r["case"], r["n"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = f"{'case':<10} {'rows':>6} " + " ".join(f"{m + ' (s)':>22}" for m in methods) + f" {'auto/best peer':>15}"
    lines = ["fit benchmark: relative test RMSE on 10^4 fresh points of the central 80% box (seconds)", head,
             "-" * len(head)]
    for case, n in cases:
        got = {r["method"]: r for r in rows if r["case"] == case and r["n"] == n}
        cells = " ".join(f"{got[m]['rel_rmse']:>12.2e} ({got[m]['seconds']:>6.0f})" if m in got else f"{'':>22}"
                         for m in methods)
        peers = [r["rel_rmse"] for m, r in got.items() if m != "auto" and math.isfinite(r["rel_rmse"])]
        ratio = (got["auto"]["rel_rmse"] / min(peers)) if "auto" in got and peers else math.nan
        lines.append(f"{case:<10} {n:>6} {cells} {ratio:>15.2f}")
    return "\n".join(lines)
