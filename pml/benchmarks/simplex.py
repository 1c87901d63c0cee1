"""pml's simplex evaluation vs a plain SciPy ``LinearNDInterpolator`` call on the same data, d = 2..6.

Both sides start from the same Delaunay triangulation (timed separately) and evaluate at the same queries: plain, as the
authors' script did (in a subprocess stopped after ``plain_budget_s``, the ratio then a lower bound), and
:class:`pml.approx.simplex.SimplexInterpolator`. It also times SciPy's own walk in plain vs Morton order and checks that
the values equal the plain call's, NaN pattern included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import numpy as np

from pml.approx import simplex
from pml.threads import limit_threads

__all__ = ["format", "run"]

_PLAIN = """
import json, sys, time
import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay
d = np.load(sys.argv[1])
tri = Delaunay(d["X"])
start = time.perf_counter()
LinearNDInterpolator(tri, d["y"])(d["Q"])
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _target(X: np.ndarray) -> np.ndarray:
    return np.sin(X).sum(axis=1) * X[:, 0]


def _time_plain_subprocess(X, y, Q, budget_s: float, build_allowance_s: float) -> float | None:
    """Seconds of the plain call in a fresh process, or None if it ran past ``budget_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, X=X, y=y, Q=Q)
        try:
            proc = subprocess.run([sys.executable, "-c", _PLAIN, path], capture_output=True, text=True,
                                  timeout=budget_s + build_allowance_s, check=True)
        except subprocess.TimeoutExpired:
            return None
    seconds = float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return seconds if seconds <= budget_s else None


def run(n_train: int = 1024, n_queries: int = 10_000, dims: Sequence[int] = (2, 3, 4, 5, 6), seed: int = 0,
        plain_budget_s: float = 15.0) -> dict:
    """Time both evaluations for each d; training points uniform on [0, 1]^d, queries on the central 80% box."""
    from scipy.interpolate import LinearNDInterpolator

    rows = []
    for d in dims:
        rng = np.random.default_rng(seed + d)
        X = rng.uniform(0.0, 1.0, size=(n_train, d))
        Q = rng.uniform(0.1, 0.9, size=(n_queries, d))
        y = _target(X)
        start = time.perf_counter()
        fast = simplex.SimplexInterpolator(X, y)  # the Delaunay triangulation only: transforms are lazy
        t_delaunay = time.perf_counter() - start
        start = time.perf_counter()
        res = fast(Q)
        t_fast = time.perf_counter() - start
        t_plain = (_time_plain_subprocess(X, y, Q, plain_budget_s, build_allowance_s=10.0 + 3.0 * t_delaunay)
                   if plain_budget_s > 0 else None)  # plain_budget_s=0: skip the subprocess timing
        # plain with one BLAS thread, in-process: all transforms, then SciPy's walk in random order; then the walk
        # alone in Morton order (method="scipy")
        with limit_threads(1):
            start = time.perf_counter()
            simplex._barycentric_transforms(fast.tri.points, fast.tri.simplices)  # timed afresh (not SciPy's cache)
            t_transform_1 = time.perf_counter() - start
            fast.tri.transform  # noqa: B018 -- fills SciPy's cache, for the walk timings below
        interp = LinearNDInterpolator(fast.tri, y)
        start = time.perf_counter()
        plain_values = interp(Q)
        t_walk_plain = time.perf_counter() - start
        start = time.perf_counter()
        perm = simplex.morton_order(Q)
        interp(np.ascontiguousarray(Q[perm]))
        t_walk_morton = time.perf_counter() - start
        same_nan = bool(np.array_equal(np.isnan(plain_values), np.isnan(res.values)))
        ok = ~np.isnan(plain_values)
        max_diff = float(np.max(np.abs(plain_values[ok] - res.values[ok]))) if ok.any() else 0.0
        t_plain_1 = t_transform_1 + t_walk_plain
        rows.append({
            "dim": d, "n_simplices": int(fast.tri.nsimplex), "delaunay_s": t_delaunay,
            "plain_s": t_plain, "plain_timed_out": t_plain is None, "pml_s": t_fast,
            "ratio": (t_plain if t_plain is not None else plain_budget_s) / t_fast if plain_budget_s > 0 else None,
            "plain_1thread_s": t_plain_1, "ratio_1thread": t_plain_1 / t_fast,
            "walk_plain_s": t_walk_plain, "walk_morton_s": t_walk_morton, "walk_ratio": t_walk_plain / t_walk_morton,
            "max_abs_diff": max_diff, "nan_pattern_identical": same_nan, "n_outside": res.n_outside,
        })
    return {"n_train": n_train, "n_queries": n_queries, "seed": seed, "plain_budget_s": plain_budget_s,
            "blas_threads": _blas_threads(), "rows": rows}


def _blas_threads() -> int | None:
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else None


def format(result: dict) -> str:
    lines = [f"simplex evaluation, |D| = {result['n_train']}, {result['n_queries']} queries, SciPy BLAS threads: "
             f"{result['blas_threads']} (times exclude the shared Delaunay construction)",
             f"{'d':>2} {'simplices':>9} {'Delaunay':>9} {'plain':>8} {'pml':>8} {'ratio':>7} | {'plain 1thr':>10} "
             f"{'ratio':>6} | {'SciPy walk random/morton':>26} | {'max|diff|':>9} NaN-same outside"]
    for r in result["rows"]:
        plain = f">{result['plain_budget_s']:.0f}s" if r["plain_timed_out"] else f"{r['plain_s']:.2f}s"
        plain = "skipped" if result["plain_budget_s"] <= 0 else plain
        ratio = "-" if r["ratio"] is None else (">" if r["plain_timed_out"] else "") + f"{r['ratio']:.0f}x"
        lines.append(f"{r['dim']:>2} {r['n_simplices']:>9} {r['delaunay_s']:>8.2f}s {plain:>8} {r['pml_s']:>7.3f}s "
                     f"{ratio:>7} | {r['plain_1thread_s']:>9.3f}s {r['ratio_1thread']:>5.1f}x | "
                     f"{r['walk_plain_s']:>10.3f}s/{r['walk_morton_s']:.3f}s ({r['walk_ratio']:>4.1f}x) | "
                     f"{r['max_abs_diff']:>9.1e} {str(r['nan_pattern_identical']):>8} {r['n_outside']:>7}")
    lines.append("plain: LinearNDInterpolator(tri, y)(X) on a fresh triangulation, timed in a subprocess with SciPy's "
                 "BLAS threads (> = stopped at the budget, ratio a lower bound). Most of its time is the barycentric "
                 "transform of every simplex, which a multi-threaded BLAS makes very slow on a busy machine. "
                 "plain 1thr: the same work with one BLAS thread. pml (d >= 4): transforms only for the simplices its "
                 "vectorised walk visits; (d <= 3) SciPy's walk in Morton order; one BLAS thread. "
                 "Last timing columns: SciPy's walk alone (transforms "
                 "cached) in random vs Morton query order (method='scipy').")
    return "\n".join(lines)
