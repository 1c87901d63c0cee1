"""One network sweep for paper §§2-3 (Figs. 2, 3, 5, 6a, the width-100 remark) and one table of its results.

A :class:`NetworkTask` trains one network shape on all its seeds (dense ones together as one
:class:`pml.nn.networks.BatchedMLP`) and returns a row per seed; a :class:`NetworkSweep` of :class:`Curve` yields one
task per (curve, width) and assembles a :class:`NetworkRuns` table, whose methods are what the chapters draw. The
protocol is the authors' (|D| = N // (d+1), standardised inputs, Adam, MSE, cyclic batches); the cost model
(:func:`step_seconds`) uses constants measured by ``pml bench step``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pml import equations, scaling
from pml.config import Config
from pml.engine import Sweep, Task
from pml.experiments.sampling import RNGS, interp_loglog, sample_split
from pml.nn.shapes import PAPER_WIDTHS

__all__ = [
    "KINDS",
    "PAPER_WIDTHS",
    "RNGS",
    "Curve",
    "NetworkRuns",
    "NetworkSweep",
    "NetworkTask",
    "interp_loglog",
    "sample_split",
    "step_kernel",
    "step_seconds",
    "train_config",
    "train_seeds",
]

KINDS = ("dense", "modular")


# Cost model constants: fitted to the CPU time per step of float64 networks of 130 to 65k parameters (depths 2-6,
# dense batched and unbatched, modular) trained with one thread on one core of the machine that built the book.
STEP_OVERHEAD_S = 8e-4  # seconds per step of a group trained together: Python, autograd and optimizer overhead
MEMBER_OVERHEAD_S = 2.5e-4  # ... and per member of the group
MODULE_OVERHEAD_S = 5e-5  # ... and per module of a modular network (each is its own small MLP)
SECONDS_PER_MAC = 2.7e-11  # per parameter and point of a pass (the matrix products)
SECONDS_PER_ACTIVATION = 7e-9  # per hidden unit and point of a pass (bias, activation and their gradients)
# The fast step (pml.nn.fast_step): measured speed-ups over autograd (paired, interleaved timings) applied to the
# autograd constants above, then fitted (relative errors within 0.6-1.6x). Torch kernel (depth >= 3): the same
# matrix products as autograd, less elementwise work (seven deep shapes of Figs. 2, 3, 5, trained 1-20 steps);
TORCH_SECONDS_PER_MAC = 2.7e-11  # per parameter and point of a pass
TORCH_SECONDS_PER_ACTIVATION = 3.2e-9  # per hidden unit and point of a pass
# compiled kernel (depth 2): `pml bench step`'s shapes whose step is not overhead-bound (members x batch x hidden
# units >= 1e7), non-negative least squares:
COMPILED_SECONDS_PER_MAC = {"tanh": 1.2e-10, "relu": 9.6e-11}  # compiled kernel (depth 2): per parameter and batch
COMPILED_SECONDS_PER_UNIT = {"tanh": 2.0e-9, "relu": 0.0}  # point (d + 2 multiply-adds), per unit and point (tanh)
STEP_KERNELS = ("autograd", "torch", "compiled")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def stack_splits(equation: str, n_train: int, n_test: int, seeds: Sequence[int], rng: str):
    """:func:`sample_split` for every seed, stacked: (S, |D|, d), (S, |D|), (S, n_test, d), (S, n_test)."""
    splits = [sample_split(equation, n_train, n_test, s, rng) for s in seeds]
    return [np.stack([sp[i] for sp in splits]) for i in range(4)]


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def train_config(n_steps: int, lr: float, batch_size: int, selection: str, log_every: int = 100):
    """The :class:`pml.nn.training.TrainConfig` of every network here (test chunks of 10k, the fast step)."""
    from pml.nn import training

    return training.TrainConfig(n_steps=n_steps, lr=lr, batch_size=batch_size, selection=selection,
                                log_every=log_every, test_every_step=selection == "min_test", eval_chunk_size=10_000,
                                step_impl="fast")


def step_kernel(kind: str, depth: int, activation: str, device: str = "cpu") -> str:
    """The kernel :func:`train_config`'s ``step_impl="fast"`` gives a network (:func:`pml.nn.fast_step.choose_kernel`,
    assuming the compiled kernel builds): "compiled", "torch" or "autograd"."""
    if activation not in ("tanh", "relu") or not str(device).startswith("cpu"):
        return "autograd"
    return "compiled" if kind == "dense" and depth == 2 else "torch"


def step_seconds(n_params, hidden, n_train, batch_size, n_test, test_every: int = 100, members: int = 1,
                 modules: int = 0, kernel: str = "autograd", activation: str = "relu") -> float:
    """Estimated seconds of one Adam step of ``members`` networks trained together (see the module docstring)."""
    if kernel not in STEP_KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid: {list(STEP_KERNELS)}")
    batch = min(int(n_train), int(batch_size))
    test = n_test / test_every  # test points per step: a forward pass through the same kernel
    per_member = MEMBER_OVERHEAD_S + modules * MODULE_OVERHEAD_S
    if kernel == "compiled":  # a forward pass costs at most a fused step (tanh: about the same; ReLU: less)
        per_member += (COMPILED_SECONDS_PER_MAC[activation] * n_params
                       + COMPILED_SECONDS_PER_UNIT[activation] * hidden) * (batch + test)
    elif kernel == "torch":
        per_member += (TORCH_SECONDS_PER_MAC * n_params + TORCH_SECONDS_PER_ACTIVATION * hidden) * (3 * batch + test)
    else:
        per_member += (SECONDS_PER_MAC * n_params + SECONDS_PER_ACTIVATION * hidden) * (3 * batch + test)
    return float(STEP_OVERHEAD_S + members * per_member)


def train_seeds(equation, depth, width, activation, seeds, n_test, rng, tcfg, device, member_memory_gb):
    """Train one dense shape on every seed, as many seeds per BatchedMLP as their memory (by the step kernel's model)
    fits in ``member_memory_gb``."""
    from pml.nn import networks, training

    d = equations.get(equation).dim
    N = networks.dense_param_count(d, width, depth)
    D = networks.dataset_size_for(N, d)
    Xtr, ytr, Xte, yte = stack_splits(equation, D, n_test, seeds, rng)
    if tcfg.step_impl != "autograd" and step_kernel("dense", depth, activation, device) != "autograd":
        per_member = 8 * (16 * N + 3 * 2**19 * depth)
    else:
        per_member = 8 * 3 * (min(D, tcfg.batch_size) + min(n_test, tcfg.eval_chunk_size or n_test)) * width * (depth - 1)
    group = max(1, int(member_memory_gb * 2**30 // max(per_member, 1)))
    seeds = tuple(seeds)
    runs = []
    for start in range(0, len(seeds), group):
        part = slice(start, start + group)
        model = networks.BatchedMLP(d, width, depth, activation, seeds[part], device=device)
        results = training.train_batched(model, Xtr[part], ytr[part], Xte[part], yte[part], tcfg)
        runs += [(seed, res, len(results)) for seed, res in zip(seeds[part], results)]
    return N, D, runs, float(np.sqrt(np.mean(yte**2)))


def _train_each(task: NetworkTask, tcfg):
    """One network per seed (modular, or dense with ``batched=False``): [(seed, TrainResult, 1)], y_rms."""
    from pml.nn import networks, training

    eq = equations.get(task.equation)
    runs, tests = [], []
    for seed in task.seeds:
        X, y, Xt, yt = sample_split(task.equation, task.n_train(), task.n_test, seed, task.rng)
        if task.kind == "modular":
            model = networks.ModularMLP(eq.graph(), task.width, task.depth, task.activation, seed=seed,
                                        device=task.device)
        else:
            model = networks.make_mlp(eq.dim, task.width, task.depth, task.activation, seed=seed, device=task.device)
        runs.append((seed, training.train(model, X, y, Xt, yt, tcfg), 1))
        tests.append(yt)
    return runs, float(np.sqrt(np.mean(np.stack(tests) ** 2)))


# ---------------------------------------------------------------------------------------------------------------------
# The task: one network shape, every seed
# ---------------------------------------------------------------------------------------------------------------------

ROW_KEYS = ("kind", "equation", "dim", "activation", "depth", "width", "n_params", "n_train", "batch_size", "n_steps",
            "n_test", "seed", "rmse", "seconds_per_step")


@dataclass(frozen=True)
class NetworkTask(Task):
    """Train one network shape on every seed; the result is one row per seed (see :data:`ROW_KEYS`) and y_rms."""

    ROUNDING_SENSITIVE: ClassVar[bool] = True  # an Adam trajectory: another CPU model gives other digits

    equation: str = "I.30.5"
    kind: str = "dense"
    activation: str = "relu"
    depth: int = 3
    width: int = 13
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_steps: int = 20_000
    lr: float = 1e-3
    batch_size: int = 10_000  # batch cap B: batches of min(|D|, B) points
    selection: str = "test_at_min_train"
    n_test: int = 30_000
    rng: str = "legacy"
    batched: bool = True
    threads: int = 1
    device: str = "cpu"
    member_memory_gb: float = 4.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; valid: {list(KINDS)}")
        if self.rng not in RNGS:
            raise ValueError(f"unknown rng {self.rng!r}; valid: {list(RNGS)}")
        if not self.seeds:
            raise ValueError("a NetworkTask needs at least one seed")

    @property
    def dim(self) -> int:
        return equations.get(self.equation).dim

    def n_params(self) -> int:
        """N: every parameter of a dense net, only the existing ones of a modular net."""
        from pml.nn import networks

        if self.kind == "modular":
            return networks.modular_param_count(equations.get(self.equation).graph(), self.width, self.depth)
        return networks.dense_param_count(self.dim, self.width, self.depth)

    def n_train(self) -> int:
        """|D| = N // (d+1) (paper §2: both methods get the same N)."""
        return self.n_params() // (self.dim + 1)

    def run(self) -> dict:
        tcfg = train_config(self.n_steps, self.lr, self.batch_size, self.selection)
        if self.kind == "dense" and self.batched:
            _, _, runs, y_rms = train_seeds(self.equation, self.depth, self.width, self.activation, self.seeds,
                                            self.n_test, self.rng, tcfg, self.device, self.member_memory_gb)
        else:
            runs, y_rms = _train_each(self, tcfg)
        N, D = self.n_params(), self.n_train()
        rows = [dict(kind=self.kind, equation=self.equation, dim=self.dim, activation=self.activation,
                     depth=self.depth, width=self.width, n_params=N, n_train=D, batch_size=self.batch_size,
                     n_steps=self.n_steps, n_test=self.n_test, seed=int(seed), rmse=float(res.selected),
                     seconds_per_step=res.wall_time_s / max(res.n_steps_done, 1) / members)
                for seed, res, members in runs]
        return {"rows": rows, "y_rms": y_rms}

    def hidden_units(self) -> int:
        """Hidden units of one network (every module's, for a modular one)."""
        from pml.nn import networks

        if self.kind == "modular":
            layout = networks.modular_layout(equations.get(self.equation).graph(), self.width, self.depth)
            return sum(spec.width * (spec.depth - 1) for spec in layout)
        return self.width * (self.depth - 1)

    def cost(self) -> float:
        """Estimated CPU-seconds on one core: steps x :func:`step_seconds` of each group trained together."""
        from pml.nn import networks

        modules = 0
        if self.kind == "modular":
            modules = len(networks.modular_layout(equations.get(self.equation).graph(), self.width, self.depth))
        together = len(self.seeds) if self.kind == "dense" and self.batched else 1
        test_every = 1 if self.selection == "min_test" else 100
        per_group = step_seconds(self.n_params(), self.hidden_units(), self.n_train(), self.batch_size, self.n_test,
                                 test_every, together, modules, step_kernel(self.kind, self.depth, self.activation,
                                                                            self.device), self.activation)
        return float(self.n_steps * per_group * len(self.seeds) / together)


# ---------------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkRuns:
    """Long-format table of trained networks: one row per (kind, equation, activation, depth, width, seed)."""

    kind: np.ndarray  # "dense" | "modular"
    equation: np.ndarray
    dim: np.ndarray
    activation: np.ndarray  # "relu" | "tanh" | ...
    depth: np.ndarray
    width: np.ndarray
    n_params: np.ndarray
    n_train: np.ndarray
    batch_size: np.ndarray
    n_steps: np.ndarray
    n_test: np.ndarray
    seed: np.ndarray
    rmse: np.ndarray
    seconds_per_step: np.ndarray
    y_rms: dict = dataclasses.field(default_factory=dict)
    missing: tuple = ()  # a partial result (stored build): one dict per shape not computed (see assemble_partial)
    not_computed: Any = None  # ... and what that is, as a pml.engine.NotComputed of the step

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], y_rms: Mapping[str, float] | None = None,
                  missing: Sequence[Mapping[str, Any]] = (), not_computed: Any = None) -> NetworkRuns:
        if not rows:  # typed empty columns, so that the queries work (and find nothing)
            text = {"kind", "equation", "activation"}
            columns = {k: np.array([], dtype=str if k in text else np.float64) for k in ROW_KEYS}
        else:
            columns = {k: np.asarray([r[k] for r in rows]) for k in ROW_KEYS}
        return cls(**columns, y_rms=dict(y_rms or {}), missing=tuple(dict(m) for m in missing),
                   not_computed=not_computed)

    @property
    def complete(self) -> bool:
        """Whether every shape of the sweep is here (False for a partial result of a stored build)."""
        return not self.missing

    def missing_shapes(self, equation: str | None = None, activation: str | None = None,
                       depth: int | None = None, kind: str | None = None) -> list[dict]:
        """The shapes not computed (``missing`` entries), of ``equation`` (and the activation, depth and kind given)."""
        want = {"equation": equation, "activation": activation, "depth": depth, "kind": kind}
        return [m for m in self.missing if all(v is None or m[k] == v for k, v in want.items())]

    def __len__(self) -> int:
        return int(self.rmse.size)

    def rows(self, equation: str, activation: str | None = None, depth: int | None = None,
             kind: str | None = None) -> np.ndarray:
        """Boolean mask of the rows of ``equation`` (and of the activation, depth and kind given)."""
        mask = self.equation == equation
        for column, value in ((self.activation, activation), (self.depth, depth), (self.kind, kind)):
            if value is not None:
                mask &= column == value
        return mask

    def curve(self, equation: str, depth: int, kind: str = "dense",
              activation: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, median RMSE over seeds) of one line of a figure, sorted by N."""
        m = self.rows(equation, activation, depth, kind)
        Ns = np.unique(self.n_params[m])
        med = np.array([np.median(self.rmse[m & (self.n_params == n)]) for n in Ns])
        return Ns.astype(np.float64), med

    def median_curve(self, equation: str, activation: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`curve` of the dense networks of one activation (Figs. 5, 6a)."""
        return self.curve(equation, depth, "dense", activation)

    def depths_of(self, equation: str, kind: str = "dense", activation: str | None = None) -> list[int]:
        return sorted(int(v) for v in np.unique(self.depth[self.rows(equation, activation, kind=kind)]))

    def best_median(self, equation: str, activation: str) -> tuple[float, float]:
        """(N, RMSE) of the lowest per-(depth, width) median over seeds of the dense networks."""
        best = (float("nan"), float("inf"))
        for depth in self.depths_of(equation, "dense", activation):
            N, med = self.median_curve(equation, activation, depth)
            if med.size and np.nanmin(med) < best[1]:
                k = int(np.nanargmin(med))
                best = (float(N[k]), float(med[k]))
        return best

    # --- against the simplex (Fig. 2); ``simplex`` has ``at(equation, N)`` (piecewise_linear.SimplexScalingResult)

    def ratio_to_simplex(self, simplex, equation: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, median net RMSE / simplex RMSE at the same N) for one depth; NaN where the simplex was not computed."""
        N, med = self.curve(equation, depth)
        return N, med / simplex.at(equation, N)

    def ratio_at_largest(self, simplex, equation: str) -> dict[int, float]:
        """Per depth: net/simplex RMSE at the largest network N inside the simplex's range (NaN if none)."""
        out = {}
        for depth in self.depths_of(equation):
            N, ratio = self.ratio_to_simplex(simplex, equation, depth)
            ok = np.isfinite(ratio)
            out[depth] = float(ratio[ok][np.argmax(N[ok])]) if ok.any() else float("nan")
        return out

    def early_exponent(self, equation: str, n_points: int = 3) -> float:
        """Median over depths of the exponent fitted to the first ``n_points`` sizes of each depth's median curve
        (depths with fewer sizes are skipped; NaN if none has enough). The "early in the scaling curves" of §2."""
        fits = []
        for depth in self.depths_of(equation):
            N, med = self.curve(equation, depth)
            if N.size >= n_points:
                fits.append(scaling.fit_power_law(N[:n_points], med[:n_points]).exponent)
        return float(np.median(fits)) if fits else float("nan")

    # --- modular vs dense (Fig. 3)

    def ratios(self, equation: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, modular median RMSE / dense median RMSE at the same N) over the modular sizes inside the dense range."""
        Nm, rm = self.curve(equation, depth, "modular")
        Nd, rd = self.curve(equation, depth, "dense")
        if Nd.size < 2:
            return Nm[:0], rm[:0]
        ratio = rm / interp_loglog(Nd, rd, Nm)
        ok = np.isfinite(ratio)
        return Nm[ok], ratio[ok]

    def geometric_mean_ratio(self) -> float:
        """Geometric mean of all modular/dense ratios at equal N (every equation and depth); NaN if none."""
        logs = [np.log(self.ratios(str(eq), depth)[1]) for eq in np.unique(self.equation)
                for depth in self.depths_of(str(eq), "modular")]
        logs = np.concatenate(logs) if logs else np.zeros(0)
        return float(np.exp(logs.mean())) if logs.size else float("nan")


# ---------------------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve(Config):
    """One line of a figure: the networks of one (equation, kind, activation, depth) over ``widths``."""

    equation: str
    depth: int
    widths: tuple[int, ...]
    kind: str = "dense"
    activation: str = "relu"
    batch_size: int = 10_000  # batch cap B of these runs


@dataclass(frozen=True)
class NetworkSweep(Sweep):
    """Curves under one training protocol: one :class:`NetworkTask` per (curve, width), every seed in it."""

    curves: tuple[Curve, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    n_steps: int = 20_000
    lr: float = 1e-3
    selection: str = "test_at_min_train"
    n_test: int = 30_000
    rng: str = "legacy"
    batched: bool = True  # dense seeds as one BatchedMLP (False: one network per seed)
    threads: int = 1
    device: str = "cpu"
    member_memory_gb: float = 4.0

    @classmethod
    def grid(cls, equations_: Sequence[str], depths: Sequence[int], widths: Sequence[Sequence[int]],
             activations: Sequence[str] = ("relu",), kind: str = "dense",
             batch_size: int | Mapping[str, int] = 10_000, **protocol) -> NetworkSweep:
        """equations x depths x activations, ``widths[i]`` at ``depths[i]``; ``batch_size`` per activation or one."""
        if len(widths) != len(depths):
            raise ValueError(f"need one width tuple per depth: {len(depths)} depths, {len(widths)} tuples")
        curves = tuple(Curve(str(eq), int(depth), tuple(int(w) for w in ws), kind, str(act),
                             int(batch_size[act] if isinstance(batch_size, Mapping) else batch_size))
                       for eq in equations_ for depth, ws in zip(depths, widths) for act in activations)
        return cls(curves=curves, **{k: tuple(v) if isinstance(v, list) else v for k, v in protocol.items()})

    def tasks(self) -> list[NetworkTask]:
        return [NetworkTask(equation=c.equation, kind=c.kind, activation=c.activation, depth=c.depth, width=int(w),
                            seeds=tuple(int(s) for s in self.seeds), n_steps=self.n_steps, lr=self.lr,
                            batch_size=c.batch_size, selection=self.selection, n_test=self.n_test, rng=self.rng,
                            batched=self.batched, threads=self.threads, device=self.device,
                            member_memory_gb=self.member_memory_gb)
                for c in self.curves for w in c.widths]

    def assemble(self, results: Sequence[dict]) -> NetworkRuns:
        rows, y_rms = [], {}
        for task, result in zip(self.tasks(), results):
            rows += result["rows"]
            y_rms.setdefault(task.equation, float(result["y_rms"]))
        return NetworkRuns.from_rows(rows, y_rms)

    def assemble_partial(self, results: Sequence[dict | None]) -> NetworkRuns:
        """The table of the stored shapes; each missing one is listed in :attr:`NetworkRuns.missing`."""
        tasks = self.tasks()
        rows, y_rms, missing = [], {}, []
        for task, result in zip(tasks, results):
            if result is None:
                missing.append(dict(kind=task.kind, equation=task.equation, activation=task.activation,
                                    depth=task.depth, width=task.width, n_params=task.n_params(),
                                    seeds=len(task.seeds), cpu_hours=task.cost() / 3600))
                continue
            rows += result["rows"]
            y_rms.setdefault(task.equation, float(result["y_rms"]))
        from pml.engine import partial

        return NetworkRuns.from_rows(rows, y_rms, missing, partial.shortfall(self, results))
