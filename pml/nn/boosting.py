"""Boosting, i.e. staged training of neural networks (paper §4.2, Figs. 8-9), and merging the stages into one network.

The authors' scripts (ejmichaud/precision-ml, ``scripts/combined-techniques-*.py``, steps 3-4): stage k > 1 fits the
residual divided by c_k, and F_k = F_{k-1} + c_k f_k. Their normaliser is the mean absolute training residual (their
``c_code = 1 / mean|y - f1|``, so the paper's c = 1 / c_code); the RMS is an option. The stage trainer is any callable
that fits a model in place, so the same boosting serves any optimiser. :func:`merge_stages` builds the paper's single
network."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["BoostStage", "BoostResult", "normaliser_scale", "predict_stages", "boost", "merge_stages"]

Trainer = Callable[..., Any]

# Activations that act element-wise: the only ones a block-diagonal merge preserves exactly.
ELEMENTWISE = (
    nn.Tanh, nn.ReLU, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Identity,
    nn.Hardtanh, nn.Mish, nn.CELU, nn.SELU, nn.Tanhshrink, nn.Softsign, nn.ReLU6, nn.LogSigmoid,
)


def normaliser_scale(residual, normaliser: str | float = "mean_abs") -> float:
    """The boosting scale c of a residual: the next stage fits r / c.

    Parameters
    ----------
    residual : array_like
        The residual of the stages so far.
    normaliser : str or float, optional
        ``"mean_abs"`` (default, mean(abs(r)), the authors' scripts), ``"rms"``, ``"none"`` (c = 1) or c itself.

    Returns
    -------
    float
        c, positive and finite.
    """
    r = np.asarray(residual, dtype=np.float64).reshape(-1)
    if isinstance(normaliser, str):
        if normaliser == "mean_abs":
            c = float(np.mean(np.abs(r)))
        elif normaliser == "rms":
            c = float(np.sqrt(np.mean(r**2)))
        elif normaliser == "none":
            c = 1.0
        else:
            raise ValueError(f"normaliser must be 'mean_abs', 'rms', 'none' or a positive number, got {normaliser!r}")
    else:
        c = float(normaliser)
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"the boosting scale c must be positive and finite, got {c!r} (is the residual exactly 0?)")
    return c


def _module_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(model.parameters(), None)
    if p is None:
        raise ValueError("model has no parameters")
    return p.dtype, p.device


def _output(model: nn.Module, X) -> np.ndarray:
    """Model output on X as float64 numpy of shape (n, k)."""
    dtype, device = _module_dtype_device(model)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=dtype, device=device)
    if Xt.ndim == 1:
        Xt = Xt.reshape(-1, 1)
    with torch.no_grad():
        out = model(Xt)
    return out.reshape(Xt.shape[0], -1).cpu().numpy().astype(np.float64)


def predict_stages(models: Sequence[nn.Module], scales: Sequence[float], X) -> np.ndarray:
    """F(X) = sum_k c_k f_k(X) as float64 numpy, shaped (n,) for scalar outputs and (n, k) otherwise."""
    if len(models) != len(scales) or not models:
        raise ValueError(f"need one scale per model and at least one model, got {len(models)} and {len(scales)}")
    total = scales[0] * _output(models[0], X)
    for m, c in zip(models[1:], scales[1:]):
        total = total + c * _output(m, X)
    return total[:, 0] if total.shape[1] == 1 else total


@dataclasses.dataclass
class BoostStage:
    """One stage: its scale c_k (1 for stage 1), the trainer's return value, and the combined model's RMSEs."""

    scale: float
    result: Any
    train_rmse: float
    test_rmse: float


@dataclasses.dataclass
class BoostResult:
    """Stages f_k with scales c_k: the model is F(x) = sum_k c_k f_k(x) (paper §4.2)."""

    models: list[nn.Module]
    scales: list[float]
    stages: list[BoostStage]

    @property
    def train_rmse(self) -> float:
        return self.stages[-1].train_rmse

    @property
    def test_rmse(self) -> float:
        return self.stages[-1].test_rmse

    def predict(self, X) -> np.ndarray:
        """F(X) = sum_k c_k f_k(X) (:func:`predict_stages`)."""
        return predict_stages(self.models, self.scales, X)

    def merged(self) -> nn.Sequential:
        """One network computing F (:func:`merge_stages`)."""
        return merge_stages(self.models, self.scales)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a).reshape(len(b), -1) - np.asarray(b).reshape(len(b), -1)) ** 2)))


def boost(
    models: Sequence[nn.Module],
    X,
    y,
    trainer: Trainer,
    X_test=None,
    y_test=None,
    *,
    normaliser: str | float = "mean_abs",
    n_pretrained: int = 0,
    trainer_kwargs: dict | None = None,
) -> BoostResult:
    """Fit ``models`` in sequence, each to the normalised residual of the ones before (paper §4.2).

    ``models[k]`` is fitted to (y - F_{k-1}(X)) / c_k, with c_k from :func:`normaliser_scale` (default "mean_abs",
    the authors' choice in their Fig. 8-9 scripts). The trainer sees the test residual scaled by the same c_k.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        The stage networks, trained in place.
    X, y : array_like
        The training set.
    trainer : callable
        ``trainer(model, X, y, X_test, y_test, **trainer_kwargs)`` fits one stage (e.g. :func:`pml.nn.lm.train` or
        :func:`pml.nn.bfgs.bfgs`).
    X_test, y_test : array_like, optional
        A test set (both or neither).
    normaliser : str or float, optional
        How c_k is computed (default ``"mean_abs"``).
    n_pretrained : int, optional
        Leading models already fitted, not passed to the trainer (default 0).
    trainer_kwargs : dict, optional
        Keyword arguments for every trainer call.

    Returns
    -------
    BoostResult
        The stages and their scales.
    """
    models = list(models)
    if not models:
        raise ValueError("boost needs at least one model")
    if int(n_pretrained) != n_pretrained or not 0 <= n_pretrained <= len(models):
        raise ValueError(f"n_pretrained must be an integer in [0, {len(models)}], got {n_pretrained!r}")
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    kwargs = dict(trainer_kwargs or {})
    y = np.asarray(y, dtype=np.float64)
    y_test = None if y_test is None else np.asarray(y_test, dtype=np.float64)
    scales: list[float] = []
    stages: list[BoostStage] = []
    for k, model in enumerate(models):
        if k == 0:
            c, target, target_test = 1.0, y, y_test
        else:
            resid = y - predict_stages(models[:k], scales, X).reshape(y.shape)
            c = normaliser_scale(resid, normaliser)
            target = resid / c
            target_test = None
            if y_test is not None:
                target_test = (y_test - predict_stages(models[:k], scales, X_test).reshape(y_test.shape)) / c
        if k < n_pretrained:
            result = None
        elif X_test is None:
            result = trainer(model, X, target, **kwargs)
        else:
            result = trainer(model, X, target, X_test, target_test, **kwargs)
        scales.append(c)
        train = _rmse(predict_stages(models[: k + 1], scales, X), y)
        test = math.nan if X_test is None else _rmse(predict_stages(models[: k + 1], scales, X_test), y_test)
        stages.append(BoostStage(scale=c, result=result, train_rmse=train, test_rmse=test))
    return BoostResult(models=models, scales=scales, stages=stages)


# ----------------------------------------------------------------------------------------------- merging
def _layers(net: nn.Module, k: int) -> list[nn.Module]:
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"stage {k}: merge_stages needs nn.Sequential networks, got {type(net).__name__}")
    mods = list(net)
    linears = [m for m in mods if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"stage {k}: no nn.Linear layer")
    for m in mods:
        if not isinstance(m, nn.Linear) and not isinstance(m, ELEMENTWISE):
            raise ValueError(
                f"stage {k}: {type(m).__name__} is neither nn.Linear nor a known element-wise activation; "
                "a block-diagonal merge is exact only for element-wise activations"
            )
    if not isinstance(mods[0], nn.Linear) or not isinstance(mods[-1], nn.Linear):
        raise ValueError(f"stage {k}: the network must start and end with nn.Linear")
    return mods


def merge_stages(nets: Sequence[nn.Module], scales: Sequence[float]) -> nn.Sequential:
    """One ``nn.Sequential`` whose output is sum_k scales[k] * nets[k](x), up to float rounding (paper §4.2).

    The nets must share one layout of ``nn.Linear`` and element-wise activations (widths may differ): the first layers'
    rows are stacked, hidden layers are block-diagonal and the last layer concatenates the last layers' columns scaled
    by scales[k] (the paper's "parameters of the last layer of f2 are scaled down by c").

    Parameters
    ----------
    nets : sequence of torch.nn.Module
        The stage networks (``nn.Sequential``).
    scales : sequence of float
        One scale per net.

    Returns
    -------
    torch.nn.Sequential
        The merged network, with the first net's dtype and device.
    """
    nets = list(nets)
    if len(nets) != len(scales) or not nets:
        raise ValueError(f"need one scale per net and at least one net, got {len(nets)} and {len(scales)}")
    layouts = [_layers(n, k) for k, n in enumerate(nets)]
    ref = layouts[0]
    for k, mods in enumerate(layouts[1:], start=1):
        if len(mods) != len(ref):
            raise ValueError(f"stage {k} has {len(mods)} modules but stage 0 has {len(ref)}: depths must match")
        for i, (a, b) in enumerate(zip(ref, mods)):
            if type(a) is not type(b) or (not isinstance(a, nn.Linear) and repr(a) != repr(b)):
                raise ValueError(f"module {i} differs between stage 0 ({a!r}) and stage {k} ({b!r})")
        if mods[0].in_features != ref[0].in_features:
            raise ValueError(f"stage {k} takes {mods[0].in_features} inputs but stage 0 takes {ref[0].in_features}")
        if mods[-1].out_features != ref[-1].out_features:
            raise ValueError(f"stage {k} has {mods[-1].out_features} outputs but stage 0 has {ref[-1].out_features}")
    dtype, device = ref[0].weight.dtype, ref[0].weight.device
    lin_idx = [i for i, m in enumerate(ref) if isinstance(m, nn.Linear)]
    first, last = lin_idx[0], lin_idx[-1]
    c = [float(s) for s in scales]
    out: list[nn.Module] = []
    with torch.no_grad():
        for i, m in enumerate(ref):
            if not isinstance(m, nn.Linear):
                out.append(copy.deepcopy(m))
                continue
            Ws = [mods[i].weight.detach().to(dtype=dtype, device=device) for mods in layouts]
            bs = [
                mods[i].bias.detach().to(dtype=dtype, device=device)
                if mods[i].bias is not None
                else torch.zeros(mods[i].out_features, dtype=dtype, device=device)
                for mods in layouts
            ]
            if i == first and i == last:
                W = sum(ck * Wk for ck, Wk in zip(c, Ws))
                b = sum(ck * bk for ck, bk in zip(c, bs))
            elif i == first:
                W, b = torch.cat(Ws, dim=0), torch.cat(bs)
            elif i == last:
                W = torch.cat([ck * Wk for ck, Wk in zip(c, Ws)], dim=1)
                b = sum(ck * bk for ck, bk in zip(c, bs))
            else:
                W, b = torch.block_diag(*Ws), torch.cat(bs)
            # skip_init: no random initialisation, so the global torch RNG is never touched.
            lin = nn.utils.skip_init(nn.Linear, W.shape[1], W.shape[0], dtype=dtype, device=device)
            lin.weight.copy_(W)
            lin.bias.copy_(b)
            out.append(lin)
    return nn.Sequential(*out)
