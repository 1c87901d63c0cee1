"""Batched vs one-at-a-time training of the seeds of one configuration of Fig. 2.

S networks are trained twice, by S calls of :func:`pml.nn.training.train` and by one
:func:`pml.nn.training.train_batched` call; the benchmark reports the wall times, their ratio and the largest difference
between the results (float64 rounding only), for both test-evaluation settings and each entry of ``thread_settings``.
Batching removes per-operation overhead, so it pays most for small networks and data sets."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from pml import data
from pml.nn import networks, training

__all__ = ["format", "run"]


def _target(X: np.ndarray) -> np.ndarray:
    return np.cos(2 * X[:, 0]) * X[:, 1]  # a smooth 2D function; any target works for timing


def _one(n_seeds, width, depth, n_train, n_test, n_steps, activation, threads, sequential_budget_s,
         test_every_step) -> dict:
    ranges = [(-1.0, 1.0), (-1.0, 1.0)]
    splits = [data.train_test_split(_target, ranges, n_train, n_test, seed=s) for s in range(n_seeds)]
    stacked = [np.stack([sp[i] for sp in splits]) for i in range(4)]
    cfg = training.TrainConfig(n_steps=n_steps, batch_size=10_000, log_every=max(1, n_steps // 10),
                               test_every_step=test_every_step)
    warm = training.TrainConfig(n_steps=10, batch_size=10_000)
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        # warm-up: first calls pay one-off allocation / dispatch costs
        training.train(networks.make_mlp(2, width, depth, activation, seed=0), *splits[0], warm)
        training.train_batched(networks.BatchedMLP(2, width, depth, activation, seeds=range(n_seeds)), *stacked, warm)
        start = time.perf_counter()
        sequential = []
        for s in range(n_seeds):  # stop early past the budget and scale (the runs are independent and alike)
            sequential.append(training.train(networks.make_mlp(2, width, depth, activation, seed=s), *splits[s], cfg))
            if time.perf_counter() - start > sequential_budget_s:
                break
        t_seq = (time.perf_counter() - start) * n_seeds / len(sequential)
        model = networks.BatchedMLP(2, width, depth, activation, seeds=range(n_seeds))
        start = time.perf_counter()
        batched = training.train_batched(model, *stacked, cfg)
        t_bat = time.perf_counter() - start
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    diff = {name: max(abs(getattr(a, name) - getattr(b, name)) for a, b in zip(sequential, batched))
            for name in ("final_train", "final_test", "test_at_min_train")}
    return {"n_seeds": n_seeds, "threads": used, "test_every_step": bool(test_every_step), "sequential_s": t_seq, "sequential_timed": len(sequential),
            "batched_s": t_bat, "ratio": t_seq / t_bat,
            "max_abs_diff": diff,
            "same_argmin_step": all(a.step_at_min_train == b.step_at_min_train for a, b in zip(sequential, batched))}


def run(seed_counts: Sequence[int] = (4, 8, 24), width: int = 13, depth: int = 3, n_train: int = 64,
        n_test: int = 1000, n_steps: int = 200, activation: str = "relu",
        thread_settings: Sequence[int | None] = (None, 1), sequential_budget_s: float = 15.0,
        test_every_step_settings: Sequence[bool] = (False, True)) -> dict:
    """Time sequential vs batched training of S same-shape MLPs for each S in ``seed_counts``, thread setting and test
    setting (``test_every_step=True`` is the authors' scripts', False the chapters')."""
    rows = [_one(S, width, depth, n_train, n_test, n_steps, activation, threads, sequential_budget_s, every)
            for every in test_every_step_settings for threads in thread_settings for S in seed_counts]
    return {"dim": 2, "width": width, "depth": depth, "n_train": n_train, "n_test": n_test, "n_steps": n_steps,
            "activation": activation, "params_per_net": networks.dense_param_count(2, width, depth), "runs": rows}


def format(result: dict) -> str:
    lines = [f"batched vs sequential training: {result['n_steps']} Adam steps, MLP 2-{result['width']}x"
             f"{result['depth'] - 1}-1 ({result['activation']}, {result['params_per_net']} params), "
             f"|D| = {result['n_train']}, {result['n_test']} test points",
             f"{'test eval':>10} {'seeds':>5} {'threads':>7} {'sequential':>11} {'batched':>9} {'ratio':>7}  max|diff| final train / "
             "final test / test_at_min_train"]
    for r in result["runs"]:
        d = r["max_abs_diff"]
        every = "every step" if r["test_every_step"] else "best+logged"
        lines.append(f"{every:>10} {r['n_seeds']:>5} {r['threads']:>7} {r['sequential_s']:>10.2f}s {r['batched_s']:>8.2f}s "
                     f"{r['ratio']:>6.1f}x  {d['final_train']:.1e} / {d['final_test']:.1e} / "
                     f"{d['test_at_min_train']:.1e}" + ("" if r["same_argmin_step"] else "  (argmin step differs)")
                     + (f"  (sequential: {r['sequential_timed']} of {r['n_seeds']} runs timed, scaled)"
                        if r["sequential_timed"] < r["n_seeds"] else ""))
    return "\n".join(lines)
