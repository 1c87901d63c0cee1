"""Benchmark: pml's BFGS against the authors' way of feeding a torch model to SciPy (paper §4.2, Fig. 8).

Both sides run ``scipy.optimize.minimize(method="BFGS")`` from the same network on the teacher-student problem with the
authors' options and differ only in how SciPy gets the loss and gradient: pml (:func:`pml.nn.bfgs.bfgs`, ``jac=True``,
one forward and backward pass on views of the flat vector), pml with ``engine="rank2"`` (O(N^2) update), and the
reference (the authors' scripts: separate ``fun`` and ``jac``, each copying the vector into the module and running its
own pass; its loss pass runs under ``torch.no_grad()``, so the ratio is if anything understated). The default run uses
10,000 training points (the paper 100,000) and a time cap per optimiser."""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.optimize
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from pml.nn.bfgs import _BFGS_STOP, bfgs
from pml.nn.flat import FlatModel
from pml.nn.networks import make_mlp
from pml.teacher import teacher_student_data
from pml.threads import limit_threads

__all__ = ["run", "format", "reference_bfgs"]


def _tensor(a) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(a, dtype=np.float64))
    return t.reshape(t.shape[0], -1)


class _Reference:
    """The authors' pattern: copy theta into the module, then a separate pass for the loss and for the gradient."""

    def __init__(self, model, X, y):
        self.model, self.X, self.y = model, _tensor(X), _tensor(y)
        self.n_calls = 0

    def fun(self, x: np.ndarray) -> float:
        self.n_calls += 1
        vector_to_parameters(torch.from_numpy(np.array(x, dtype=np.float64)), self.model.parameters())
        with torch.no_grad():
            return float(torch.mean((self.model(self.X) - self.y) ** 2))

    def jac(self, x: np.ndarray) -> np.ndarray:
        vector_to_parameters(torch.from_numpy(np.array(x, dtype=np.float64)), self.model.parameters())
        self.model.zero_grad()
        loss = torch.mean((self.model(self.X) - self.y) ** 2)
        loss.backward()
        return parameters_to_vector([p.grad for p in self.model.parameters()]).detach().numpy().copy()

    def rmse(self, x: np.ndarray, X: torch.Tensor, y: torch.Tensor) -> float:
        vector_to_parameters(torch.from_numpy(np.array(x, dtype=np.float64)), self.model.parameters())
        with torch.no_grad():
            return math.sqrt(float(torch.mean((self.model(X) - y) ** 2)))


def reference_bfgs(model, X, y, X_test, y_test, *, gtol=1e-60, maxiter=25_000, target_test_rmse=None,
                   time_limit=None) -> dict:
    """SciPy BFGS driven the authors' way (see the module docstring); returns its history and stop message."""
    ref = _Reference(model, X, y)
    Xt, yt = _tensor(X_test), _tensor(y_test)
    x0 = parameters_to_vector(model.parameters()).detach().numpy().copy()
    hist = {"step": [0], "test_rmse": [ref.rmse(x0, Xt, yt)], "time_s": [0.0]}
    t0 = time.perf_counter()
    stop = {}

    def callback(intermediate_result):
        hist["step"].append(hist["step"][-1] + 1)
        hist["test_rmse"].append(ref.rmse(intermediate_result.x, Xt, yt))
        hist["time_s"].append(time.perf_counter() - t0)
        if target_test_rmse is not None and hist["test_rmse"][-1] <= target_test_rmse:
            stop["reason"] = "target"
            raise StopIteration
        if time_limit is not None and hist["time_s"][-1] >= time_limit:
            stop["reason"] = "time_limit"
            raise StopIteration

    res = scipy.optimize.minimize(ref.fun, x0, jac=ref.jac, method="BFGS", callback=callback,
                                  options={"gtol": gtol, "maxiter": maxiter})
    return {
        "history": {k: np.asarray(v) for k, v in hist.items()},
        "n_iter": int(res.nit),
        "n_fev": int(res.nfev),
        "stop_reason": stop.get("reason", _BFGS_STOP.get(int(res.status), str(res.status))),
        "message": str(res.message),
        "wall_s": time.perf_counter() - t0,
    }


def _time_per_call(fn, n_eval: int, repeats: int = 3) -> float:
    """Seconds per call: the best of ``repeats`` blocks of ``n_eval`` calls (after one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n_eval):
            fn()
        best = min(best, (time.perf_counter() - t) / n_eval)
    return best


def _time_to(history_time, history_rmse, threshold) -> float:
    hit = np.nonzero(np.asarray(history_rmse) <= threshold)[0]
    return float(np.asarray(history_time)[hit[0]]) if hit.size else math.nan


def run(
    width: int = 20,
    n_train: int = 10_000,
    n_test: int = 10_000,
    seed: int = 0,
    n_eval: int = 20,
    time_cap: float = 50.0,
    target_test_rmse: float = 1e-10,
    num_threads: int | None = 1,
) -> dict:
    """Seconds per loss+gradient and BFGS time-to-target of pml (both engines) and the authors' reference on the
    teacher-student problem, compared at the largest of the runs' best test RMSEs."""
    with limit_threads(num_threads):
        X, y, X_test, y_test = teacher_student_data(n_train, n_test, seed)
        model_pml = make_mlp(1, width, 3, activation="tanh", seed=seed)
        model_rank2 = make_mlp(1, width, 3, activation="tanh", seed=seed)
        model_ref = make_mlp(1, width, 3, activation="tanh", seed=seed)
        flat = FlatModel(model_pml, X, y)
        x0 = flat.theta().numpy()
        ref = _Reference(model_ref, X, y)
        t_pml = _time_per_call(lambda: flat.scipy_fun(x0), n_eval)
        t_ref = _time_per_call(lambda: (ref.fun(x0), ref.jac(x0)), n_eval)
        vector_to_parameters(torch.from_numpy(x0.copy()), model_ref.parameters())

        res = bfgs(model_pml, X, y, X_test, y_test, target_test_rmse=target_test_rmse, time_limit=time_cap)
        res2 = bfgs(model_rank2, X, y, X_test, y_test, target_test_rmse=target_test_rmse,
                             time_limit=time_cap, engine="rank2")
        rr = reference_bfgs(model_ref, X, y, X_test, y_test, target_test_rmse=target_test_rmse, time_limit=time_cap)
        threads = torch.get_num_threads()

    runs = {
        name: {
            "n_iter": r.n_iter, "n_fev": r.n_fev, "stop_reason": r.stop_reason, "wall_s": r.wall_s,
            "best_test_rmse": float(np.nanmin(r.history["test_rmse"])),
            "history_time": r.history["time_s"].tolist(), "history_test_rmse": r.history["test_rmse"].tolist(),
        }
        for name, r in (("pml", res), ("pml_rank2", res2))
    }
    runs.update({
        "reference": {
            "n_iter": rr["n_iter"], "n_fev": rr["n_fev"], "stop_reason": rr["stop_reason"], "wall_s": rr["wall_s"],
            "best_test_rmse": float(np.nanmin(rr["history"]["test_rmse"])),
            "history_time": rr["history"]["time_s"].tolist(), "history_test_rmse": rr["history"]["test_rmse"].tolist(),
        },
    })
    common = max(r["best_test_rmse"] for r in runs.values())
    for r in runs.values():
        r["time_to_target"] = _time_to(r["history_time"], r["history_test_rmse"], target_test_rmse)
        r["time_to_common"] = _time_to(r["history_time"], r["history_test_rmse"], common)
        r["s_per_iter"] = r["wall_s"] / max(r["n_iter"], 1)
    return {
        "config": {"width": width, "depth": 3, "n_params": flat.n_params, "n_train": n_train, "n_test": n_test,
                   "seed": seed, "n_eval": n_eval, "time_cap": time_cap, "target_test_rmse": target_test_rmse,
                   "torch_threads": threads},
        "eval_s_pml": t_pml,
        "eval_s_reference": t_ref,
        "eval_ratio": t_ref / t_pml,
        "runs": runs,
        "common_test_rmse": common,
        "time_to_common_ratio": runs["reference"]["time_to_common"] / runs["pml"]["time_to_common"],
        "time_to_common_ratio_rank2": runs["reference"]["time_to_common"] / runs["pml_rank2"]["time_to_common"],
        "note": ("n_train is 10,000 by default (paper: 100,000) to keep the run under ~3 minutes on 2 cores"
                 if n_train < 100_000 else ""),
    }


def format(result: dict) -> str:  # noqa: A001 - the benchmark interface is run() / format()
    """A short text report of :func:`run`'s result."""
    c = result["config"]
    lines = [
        f"BFGS on teacher-student: 1-{c['width']}-{c['width']}-1 tanh (N = {c['n_params']}), "
        f"n_train = {c['n_train']:,}, n_test = {c['n_test']:,}, torch threads = {c['torch_threads']}",
        f"  time per loss+grad evaluation: pml {result['eval_s_pml'] * 1e3:.2f} ms, "
        f"reference {result['eval_s_reference'] * 1e3:.2f} ms, ratio {result['eval_ratio']:.2f}x",
    ]
    for name, r in result["runs"].items():
        tt = r["time_to_target"]
        target = f"{tt:.1f} s" if math.isfinite(tt) else f"not reached in {c['time_cap']:g} s cap"
        lines.append(
            f"  {name:10s}: {r['n_iter']} it, {r['n_fev']} evals, {r['wall_s']:.1f} s "
            f"({r['s_per_iter'] * 1e3:.2f} ms/it), "
            f"stop {r['stop_reason']}, best test RMSE {r['best_test_rmse']:.3e}; "
            f"to {c['target_test_rmse']:g}: {target}; to {result['common_test_rmse']:.3e}: {r['time_to_common']:.1f} s"
        )
    lines.append(
        f"  time to common RMSE, reference / pml: {result['time_to_common_ratio']:.2f}x; "
        f"reference / pml rank2: {result['time_to_common_ratio_rank2']:.2f}x"
    )
    if result.get("note"):
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines)
