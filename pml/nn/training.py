"""The single Adam training loop of the scaling experiments (paper §2, Figs. 1-3, 5, 6), with the protocol of the
authors' script (ejmichaud/precision-ml, ``scripts/feynman-network-subexperiment-v2-simplexcompare-normalize.py``) where
it is more precise than the paper: inputs standardised (training mean, unbiased std), outputs not; Adam, MSE, float64;
batches of at most B points as cyclic contiguous slices (the paper's min(|D|, 10^4) holds for Fig. 2; the configs of
Figs. 3, 5, 6 use 3 * 10^4); ``test_at_min_train``, the value the figures plot, is the post-update test RMSE at the
first minimum of the pre-update batch train RMSE.

Variants are fields of :class:`TrainConfig`, never copies of the loop. :func:`train` fits one model and
:func:`train_batched` the members of a :class:`pml.nn.networks.BatchedMLP` together, both in place; on KeyboardInterrupt
they raise :class:`TrainingInterrupted` with the summary so far."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from pml.config import Config
from pml.nn import fast_step

__all__ = [
    "ADAM_IMPLS",
    "SELECTIONS",
    "STEP_IMPLS",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "predict",
    "select",
    "standardize",
    "train",
    "train_batched",
]

SELECTIONS = ("test_at_min_train", "min_test", "min_logged_test", "final_test")
"""Which number a run reports (the authors' scripts report different ones per figure; see the book's appendix):

* ``test_at_min_train``: post-update test RMSE at the step of the smallest pre-update batch train RMSE (Figs. 2, 3,
  5, 6);
* ``min_test``: smallest post-update test RMSE over all steps (Fig. 1b);
* ``min_logged_test``: smallest test RMSE among those logged *before* the update every ``log_every`` steps, i.e. at
  the initialisation and after every ``log_every``-th update (Fig. 1a, the width-100 remark);
* ``final_test``: test RMSE after the last update.
"""


ADAM_IMPLS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
"""PyTorch's Adam implementations (same algorithm; they differ only by float rounding). "fused" is ~3x faster per
step than "for-loop" on CPU for small networks."""

STEP_IMPLS = fast_step.STEP_IMPLS
"""How a step computes the loss and gradients (:data:`pml.nn.fast_step.STEP_IMPLS`): ``"autograd"`` (forward, then
``backward()``), ``"fast"`` (:class:`pml.nn.fast_step.FastStep` where it applies: dense and modular tanh/ReLU
networks on the CPU; autograd elsewhere), or one named kernel, ``"compiled"`` or ``"torch"``."""


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Settings of :func:`train` / :func:`train_batched`, each field commented where it is declared. Defaults are the
    paper's ReLU scaling runs (Fig. 2: 20k steps; Fig. 1 and the width-100 remark use 25k, the tanh runs and Fig. 3 a
    batch cap of 30k). The step and Adam implementations agree to rounding, so both are part of the configuration."""

    n_steps: int = 20_000  # Adam steps (paper §2: 20k; Fig. 1 and the width-100 remark: 25k)
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 10_000  # batch cap B: 10k for ReLU Figs. 2/5, 30k for tanh (Figs. 5, 6) and Fig. 3
    normalize_inputs: bool = True  # standardise X with the training mean and unbiased std (outputs untouched)
    log_every: int = 100  # thinning of the stored history (and the grid of ``min_logged_test``)
    selection: str = "test_at_min_train"  # one of SELECTIONS: the value reported as ``TrainResult.selected``
    test_every_step: bool = True  # False: evaluate the test set only where ``selection`` needs it (see below)
    eval_chunk_size: int = 0  # >0: evaluate the test set in chunks of this many points (memory); 0: all at once
    adam_impl: str = "fused"  # one of ADAM_IMPLS; the same update rule, "for-loop" is PyTorch's reference code
    step_impl: str = "autograd"  # one of STEP_IMPLS: loss and gradients by autograd or by pml.nn.fast_step

    # test_every_step=False is exact for test_at_min_train, min_logged_test and final_test: the test set is then
    # evaluated at the logged steps and at the last step, and once at the end with a copy of each member's parameters
    # taken at its lowest batch train loss (the same numbers as evaluating at that step, for one test pass instead
    # of one per improving step). ``min_test`` needs every step and requires test_every_step=True.

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.eval_chunk_size, bool) or not isinstance(self.eval_chunk_size, (int, np.integer)) \
                or self.eval_chunk_size < 0:
            raise ValueError(f"TrainConfig.eval_chunk_size must be an integer >= 0, got {self.eval_chunk_size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}")
        if self.adam_impl not in ADAM_IMPLS:
            raise ValueError(f"unknown adam_impl {self.adam_impl!r}; valid: {list(ADAM_IMPLS)}")
        if self.step_impl not in STEP_IMPLS:
            raise ValueError(f"unknown step_impl {self.step_impl!r}; valid: {list(STEP_IMPLS)}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; valid: {list(SELECTIONS)}")
        if self.selection == "min_test" and not self.test_every_step:
            raise ValueError("selection 'min_test' needs the test loss at every step: set test_every_step=True")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Summary of one training run. RMSEs are absolute, as the paper's axes; steps are 0-based update indices."""

    selection: str
    selected: float  # the value named by ``selection``
    test_at_min_train: float
    step_at_min_train: int
    min_train: float
    min_test: float  # NaN unless test_every_step
    min_logged_test: float
    initial_test: float  # test RMSE at initialisation (before any update)
    final_train: float  # pre-update batch train RMSE of the last step
    final_test: float  # post-update test RMSE of the last step
    n_steps_done: int
    interrupted: bool
    wall_time_s: float
    history_step: np.ndarray
    history_train: np.ndarray
    history_test: np.ndarray
    input_mean: np.ndarray | None  # the standardisation (None when normalize_inputs=False)
    input_std: np.ndarray | None
    step_kernel: str = "autograd"  # what computed the loss and gradients (TrainConfig.step_impl)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised on KeyboardInterrupt. ``.result`` summarises the completed steps: a TrainResult for :func:`train`
    (None if no step completed), a list of them for :func:`train_batched` (empty if none completed)."""

    def __init__(self, result):
        super().__init__("training interrupted; partial result in .result")
        self.result = result


def select(train_rmse, test_rmse, selection: str = "test_at_min_train", initial_test: float = float("nan"),
           log_every: int = 100) -> float:
    """The reported value of :data:`SELECTIONS` from the per-step curves; ``argmin`` is the first minimum, as the
    authors'."""
    train_rmse = np.asarray(train_rmse, dtype=np.float64)
    test_rmse = np.asarray(test_rmse, dtype=np.float64)
    if train_rmse.shape != test_rmse.shape or train_rmse.ndim != 1 or train_rmse.size == 0:
        raise ValueError(f"need two equal-length non-empty 1-D curves, got {train_rmse.shape} and {test_rmse.shape}")
    if selection == "test_at_min_train":
        return float(test_rmse[int(np.nanargmin(train_rmse))])
    if selection == "min_test":
        return float(np.nanmin(test_rmse))
    if selection == "min_logged_test":
        logged = test_rmse[log_every - 1:train_rmse.size - 1:log_every]  # after update s-1 == before update s
        return float(np.nanmin(np.concatenate([[initial_test], logged])))
    if selection == "final_test":
        return float(test_rmse[-1])
    raise ValueError(f"unknown selection {selection!r}; valid: {list(SELECTIONS)}")


def standardize(X, mean, std):
    """The input transform of a run: (X - mean) / std (pass ``result.input_mean`` and ``input_std``)."""
    return (X - mean) / std


def predict(model: nn.Module, X, result: TrainResult | None = None, chunk_size: int = 0) -> np.ndarray:
    """Model output on raw inputs X (n, d) as a float64 array (n,), applying ``result``'s input standardisation."""
    param = next(model.parameters())
    Xt = torch.as_tensor(np.asarray(X), dtype=param.dtype, device=param.device)
    if result is not None and result.input_mean is not None:
        mean = torch.as_tensor(result.input_mean, dtype=param.dtype, device=param.device)
        std = torch.as_tensor(result.input_std, dtype=param.dtype, device=param.device)
        Xt = standardize(Xt, mean, std)
    step = chunk_size if chunk_size > 0 else max(len(Xt), 1)
    with torch.no_grad():
        out = [model(Xt[i:i + step]).reshape(-1) for i in range(0, len(Xt), step)]
    return torch.cat(out).cpu().numpy().astype(np.float64) if out else np.zeros(0)


# ---------------------------------------------------------------------------------------------------------------------
# The loop (shared by train and train_batched; S = number of independent members)
# ---------------------------------------------------------------------------------------------------------------------


def _as_tensor(a, dtype, device, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(dtype=dtype, device=device)
    arr = np.asarray(a)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return torch.as_tensor(arr, dtype=dtype, device=device)


def _fit(forward: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor], X_train, y_train, X_test,
         y_test, cfg: TrainConfig, progress: bool, desc: str, model: nn.Module) -> list[TrainResult]:
    """Train; X_* have shape (S, n, d), y_* (S, n); forward maps (S, b, d) -> (S, b)."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    S, n, d = X_train.shape
    if n == 0 or X_test.shape[1] == 0:
        raise ValueError("need at least one training and one test point")
    if y_train.shape != (S, n) or (X_test.shape[0], X_test.shape[2]) != (S, d) or y_test.shape != X_test.shape[:2]:
        raise ValueError(f"inconsistent shapes: X_train {tuple(X_train.shape)}, y_train {tuple(y_train.shape)}, "
                         f"X_test {tuple(X_test.shape)}, y_test {tuple(y_test.shape)}")
    mean = std = None
    if cfg.normalize_inputs:
        mean = X_train.mean(dim=1, keepdim=True)
        std = X_train.std(dim=1, keepdim=True)  # unbiased, as torch.std in the authors' code
        if n < 2 or not bool(torch.all(std > 0)):
            raise ValueError("cannot standardise inputs: a training column is constant (or |D| < 2); "
                             "set normalize_inputs=False")
        X_train = (X_train - mean) / std
        X_test = (X_test - mean) / std
    n_test = X_test.shape[1]
    chunk = cfg.eval_chunk_size if cfg.eval_chunk_size > 0 else n_test

    kernel = fast_step.choose_kernel(model, cfg.step_impl)
    fast = fast_step.FastStep(model, kernel) if kernel != "autograd" else None

    def test_rmse() -> torch.Tensor:
        if fast is not None:  # the same forward pass through the kernel's workspace (no fresh test-size arrays)
            return torch.sqrt(fast.mse(X_test, y_test))
        with torch.no_grad():
            sse = sum(((forward(X_test[:, i:i + chunk]) - y_test[:, i:i + chunk]) ** 2).sum(dim=1)
                      for i in range(0, n_test, chunk))
            return torch.sqrt(sse / n_test)

    B = min(n, cfg.batch_size)

    def batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if B == n:
            return X_train, y_train
        if k + B <= n:
            return X_train[:, k:k + B], y_train[:, k:k + B]
        idx = torch.arange(k, k + B, device=X_train.device) % n
        return X_train[:, idx], y_train[:, idx]

    best = _BestParams(params, S) if not cfg.test_every_step else None
    optimizer = torch.optim.Adam(params, lr=cfg.lr, **ADAM_IMPLS[cfg.adam_impl])
    n_steps = cfg.n_steps
    train_curve = torch.full((n_steps, S), float("nan"), dtype=X_train.dtype, device=X_train.device)
    test_curve = torch.full((n_steps, S), float("nan"), dtype=X_train.dtype, device=X_train.device)
    initial_test = test_rmse()
    best_train = np.full(S, np.inf)
    bar = None
    if progress:
        from tqdm.auto import tqdm  # only when asked: importing tqdm is not free

        bar = tqdm(total=n_steps, desc=desc, leave=False)
    start = time.perf_counter()
    done = 0
    k = 0
    try:
        for s in range(n_steps):
            Xb, yb = batch(k)
            k = (k + B) % n
            optimizer.zero_grad(set_to_none=True)
            if fast is None:
                per_member = ((forward(Xb) - yb) ** 2).mean(dim=1)  # (S,) batch MSE of each member
                per_member.sum().backward()  # members share no parameters: each gets its own gradient
            else:
                per_member = fast(Xb, yb)  # the same loss; sets each parameter's .grad
            optimizer.step()
            train_curve[s] = per_member.detach().sqrt()
            if cfg.test_every_step:
                test_curve[s] = test_rmse()
            else:
                current = train_curve[s].cpu().numpy()
                improved = current < best_train
                if improved.any():
                    best.keep(improved, s)
                if (s + 1) % cfg.log_every == 0 or s == n_steps - 1:
                    test_curve[s] = test_rmse()
                best_train = np.minimum(best_train, current)
            done = s + 1
            if bar is not None and (done % cfg.log_every == 0 or done == n_steps):
                bar.update(done - bar.n)
                bar.set_postfix(train=f"{float(train_curve[s].max()):.3e}", test=f"{float(test_curve[s].max()):.3e}")
    except KeyboardInterrupt:
        if best is not None and done:
            best.fill(test_curve, test_rmse)
        results = _summaries(train_curve[:done], test_curve[:done], initial_test, cfg, done, True,
                             time.perf_counter() - start, mean, std, kernel) if done else []  # nothing done: no result
        raise TrainingInterrupted(results) from None
    finally:
        if bar is not None:
            bar.close()
    if best is not None:
        best.fill(test_curve, test_rmse)
    return _summaries(train_curve, test_curve, initial_test, cfg, done, False, time.perf_counter() - start, mean, std,
                      kernel)


class _BestParams:
    """Each member's parameters at its lowest batch train loss so far (test_every_step=False)."""

    def __init__(self, params: list[torch.Tensor], S: int):
        if S > 1 and any(p.ndim == 0 or p.shape[0] != S for p in params):
            raise ValueError(f"batched training needs every parameter's first dimension to be the {S} members")
        self.params, self.S = params, S
        self.copies = [p.detach().clone() for p in params]
        self.step = np.full(S, -1)

    def keep(self, improved: np.ndarray, step: int) -> None:
        with torch.no_grad():
            if improved.all():
                for c, p in zip(self.copies, self.params):
                    c.copy_(p)
            else:
                mask = torch.as_tensor(improved, device=self.params[0].device)
                for c, p in zip(self.copies, self.params):
                    c.copy_(torch.where(mask.view(-1, *[1] * (p.ndim - 1)), p, c))
        self.step[improved] = step

    def fill(self, test_curve: torch.Tensor, test_rmse: Callable[[], torch.Tensor]) -> None:
        """Write the test RMSE of the kept parameters into ``test_curve`` at each member's best step; the model's
        current parameters are restored afterwards."""
        with torch.no_grad():
            current = [p.detach().clone() for p in self.params]
            for p, c in zip(self.params, self.copies):
                p.copy_(c)
            try:
                values = test_rmse()
            finally:
                for p, c in zip(self.params, current):
                    p.copy_(c)
        for m in np.flatnonzero(self.step >= 0):
            test_curve[self.step[m], m] = values[m]


def _summaries(train_curve, test_curve, initial_test, cfg, done, interrupted, wall, mean, std,
               kernel) -> list[TrainResult]:
    train_np = train_curve.cpu().numpy().astype(np.float64)
    test_np = test_curve.cpu().numpy().astype(np.float64)
    initial = initial_test.cpu().numpy().astype(np.float64)
    steps = np.arange(0, done, cfg.log_every)
    if done and steps[-1] != done - 1:
        steps = np.append(steps, done - 1)
    results = []
    for m in range(train_np.shape[1]):
        tr, te = train_np[:, m], test_np[:, m]
        argmin = int(np.nanargmin(tr))
        values = {sel: select(tr, te, sel, initial[m], cfg.log_every) if (sel != "min_test" or cfg.test_every_step)
                  else float("nan") for sel in SELECTIONS}
        results.append(TrainResult(
            selection=cfg.selection,
            selected=values[cfg.selection],
            test_at_min_train=values["test_at_min_train"],
            step_at_min_train=argmin,
            min_train=float(tr[argmin]),
            min_test=values["min_test"],
            min_logged_test=values["min_logged_test"],
            initial_test=float(initial[m]),
            final_train=float(tr[-1]),
            final_test=float(te[-1]),
            n_steps_done=int(done),
            interrupted=interrupted,
            wall_time_s=float(wall),
            history_step=steps.copy(),
            history_train=tr[steps].copy(),
            history_test=te[steps].copy(),
            input_mean=None if mean is None else mean[m, 0].cpu().numpy().astype(np.float64),
            input_std=None if std is None else std[m, 0].cpu().numpy().astype(np.float64),
            step_kernel=kernel,
        ))
    return results


def _params_of(model: nn.Module) -> tuple[list[torch.Tensor], torch.dtype, torch.device]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params, params[0].dtype, params[0].device


def train(model: nn.Module, X_train, y_train, X_test, y_test, cfg: TrainConfig = TrainConfig(),
          progress: bool = False) -> TrainResult:
    """Fit ``model`` ((n, d) -> (n, 1) or (n,)) in place with Adam on the MSE, by the module's protocol.

    Parameters
    ----------
    model : torch.nn.Module
        The network, trained in place.
    X_train, y_train, X_test, y_test : array_like
        (n, d) and (n,) training, (m, d) and (m,) test data, NumPy or torch (converted to the model's dtype and device).
    cfg : TrainConfig, optional
        The settings (default: the paper's ReLU runs).
    progress : bool, optional
        Show a progress bar (default False).

    Returns
    -------
    TrainResult
        The run's summary and learning curve.

    Raises
    ------
    ValueError
        For inconsistent shapes, empty sets, a constant input column with ``normalize_inputs``, or a model that does not
        return one value per point.
    TrainingInterrupted
        On Ctrl-C, with the summary of the completed steps.
    """
    params, dtype, device = _params_of(model)
    Xtr = _as_tensor(X_train, dtype, device, "X_train")
    Xte = _as_tensor(X_test, dtype, device, "X_test")
    if Xtr.ndim != 2 or Xte.ndim != 2:
        raise ValueError(f"X_train and X_test must have shape (n, d), got {tuple(Xtr.shape)} and {tuple(Xte.shape)}")
    ytr = _as_tensor(y_train, dtype, device, "y_train").reshape(1, -1)
    yte = _as_tensor(y_test, dtype, device, "y_test").reshape(1, -1)

    def forward(X: torch.Tensor) -> torch.Tensor:
        out = model(X[0])
        if out.numel() != X.shape[1]:
            raise ValueError(f"the model must return one value per point, shape (n,) or (n, 1); got {tuple(out.shape)}")
        return out.reshape(1, -1)

    try:
        return _fit(forward, params, Xtr[None], ytr, Xte[None], yte, cfg, progress, "train", model)[0]
    except TrainingInterrupted as exc:
        exc.result = exc.result[0] if exc.result else None
        raise


def train_batched(model: nn.Module, X_train, y_train, X_test, y_test, cfg: TrainConfig = TrainConfig(),
                  progress: bool = False) -> list[TrainResult]:
    """Fit the S members of a :class:`pml.nn.networks.BatchedMLP` in place, member s on (X_train[s], y_train[s]).

    Each member has its own standardisation, batches and Adam state: the result equals ``train(model.member(s), ...)``
    on member s's data up to float64 rounding.

    Parameters
    ----------
    model : pml.nn.networks.BatchedMLP
        The S members, trained in place.
    X_train, y_train : array_like
        (S, n, d) inputs and (S, n) targets.
    X_test, y_test : array_like
        (S, m, d) and (S, m), or (m, d) and (m,) shared by all members.
    cfg : TrainConfig, optional
        The settings.
    progress : bool, optional
        Show a progress bar (default False).

    Returns
    -------
    list of TrainResult
        One per member.
    """
    params, dtype, device = _params_of(model)
    Xtr = _as_tensor(X_train, dtype, device, "X_train")
    ytr = _as_tensor(y_train, dtype, device, "y_train")
    Xte = _as_tensor(X_test, dtype, device, "X_test")
    yte = _as_tensor(y_test, dtype, device, "y_test")
    if Xtr.ndim != 3:
        raise ValueError(f"X_train must have shape (S, n, d), got {tuple(Xtr.shape)}")
    S = Xtr.shape[0]
    if Xte.ndim == 2:
        Xte = Xte.expand(S, *Xte.shape)
    if yte.ndim == 1:
        yte = yte.expand(S, -1)
    n_members = getattr(model, "n_members", S)
    if n_members != S:
        raise ValueError(f"the model has {n_members} members but X_train holds {S} data sets")

    def forward(X: torch.Tensor) -> torch.Tensor:
        return model(X).reshape(X.shape[0], X.shape[1])

    return _fit(forward, params, Xtr, ytr.reshape(S, -1), Xte, yte.reshape(S, -1), cfg, progress, "train_batched",
                model)
