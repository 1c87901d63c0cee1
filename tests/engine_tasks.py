"""Toy tasks and sweeps for the engine tests (importable by Dask workers: tests/ is on their sys.path).

Each run appends one line to the file named by the execution field ``log`` (not part of the key), so a test can
count how often each task really ran, in any process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pml import metrics
from pml.engine import Sweep, Task


def _record(log: str, text: str) -> None:
    if log:
        with open(log, "a") as fh:
            fh.write(f"{text} {os.getpid()}\n")


def runs(log) -> list[str]:
    """The recorded runs: one ``"<name> <pid>"`` line each."""
    return open(log).read().split("\n")[:-1] if os.path.exists(log) else []


@dataclass(frozen=True)
class Toy(Task):
    """Random vector and a dense matrix-vector product (BLAS) from a seed; may sleep or fail."""

    EXECUTION_FIELDS: ClassVar[frozenset[str]] = Task.EXECUTION_FIELDS | {"log", "sleep"}

    seed: int = 0
    n: int = 64
    fail: bool = False
    sleep: float = 0.0
    log: str = ""
    threads: int = 1
    device: str = "cpu"

    def run(self) -> dict:
        _record(self.log, f"toy{self.seed}")
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail:
            raise ValueError(f"toy failure at seed {self.seed}")
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal(self.n)
        a = rng.standard_normal((self.n, self.n))
        return {"seed": self.seed, "x": x, "ax": a @ x, "norm": np.float64(np.linalg.norm(a @ x)),
                "rmse": metrics.rmse(a @ x, x),
                "pair": (1, 2.5), "missing": float("nan"), "nested": {"label": "toy", "sizes": [self.n]}}

    def cost(self) -> float:
        return 1e-7 * self.n**2 + self.sleep


@dataclass(frozen=True)
class Total(Task):
    """Depends on Toy tasks: the sum of their ``ax``."""

    EXECUTION_FIELDS: ClassVar[frozenset[str]] = Task.EXECUTION_FIELDS | {"log"}

    seeds: tuple[int, ...] = (0, 1)
    n: int = 64
    fail_seeds: tuple[int, ...] = ()
    log: str = ""

    def inputs(self) -> dict[str, Task]:
        return {f"part{s}": Toy(seed=s, n=self.n, fail=s in self.fail_seeds, log=self.log) for s in self.seeds}

    def run(self, **parts) -> dict:
        _record(self.log, f"total{self.seeds}")
        return {"total": np.sum([p["ax"] for p in parts.values()], axis=0), "first": parts[f"part{self.seeds[0]}"]}

    def cost(self) -> float:
        return 1e-6 * self.n


@dataclass(frozen=True)
class ToySweep(Sweep):
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n: int = 64
    sleep: float = 0.0
    fail_seeds: tuple[int, ...] = ()
    log: str = ""

    def tasks(self) -> list[Task]:
        return [Toy(seed=s, n=self.n, sleep=self.sleep, fail=s in self.fail_seeds, log=self.log) for s in self.seeds]

    def assemble(self, results) -> dict:
        return {"seeds": [r["seed"] for r in results], "ax": np.stack([r["ax"] for r in results]),
                "norms": np.array([r["norm"] for r in results])}
