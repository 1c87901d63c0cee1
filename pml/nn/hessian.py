"""The loss-landscape Hessian of paper §4.1 (Fig. 7): full Hessian of the MSE, its spectrum, gradient projections.

The authors' notebook (ejmichaud/precision-ml, ``notebooks/create-paper-figures/eigenvalue-spectrum.ipynb``) projects
the gradient with the first layer's weights only, because its helper returns from inside its loop; :func:`spectrum`
reproduces that with ``first_layer_only=True`` and by default projects the full gradient. The Hessian is exact
(forward-over-reverse), dense, float64 and over all parameters, computed in chunks."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from torch import nn

from pml.nn.flat import FlatModel

__all__ = [
    "hessian_matrix",
    "hessian",
    "Spectrum",
    "spectrum",
    "gradient_fraction_top_k",
    "eigenvalue_counts",
    "top_eigenvalue",
]

# Default work split, tuned on a 2-core CPU (1-20-20-1 tanh, 2k-10k points): vmap over about 16 directions on
# batches of up to 2048 points (~32k point-direction pairs) ran at roughly 0.5-1 gradient-costs per Hessian
# row; much larger vmaps (hundreds of thousands of pairs) were 2-4x slower, and memory grows with the pairs.
DEFAULT_BATCH_SIZE = 2048
DEFAULT_POINT_DIRECTIONS = 2**15


def _plan(n: int, n_params: int, batch_size: int | None, chunk_size: int | None) -> tuple[int, int]:
    for name, v in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    batch_size = min(int(batch_size), n)
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_POINT_DIRECTIONS // batch_size)
    return batch_size, int(min(chunk_size, n_params))


def hessian_matrix(
    flat: FlatModel,
    theta: torch.Tensor | None = None,
    *,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    symmetrize: bool = True,
) -> torch.Tensor:
    """Dense (N, N) Hessian of the bound training MSE at ``theta`` (the authors used
    ``torch.autograd.functional.hessian``): Hessian-vector products in chunks of directions and points, about N
    gradients; ``symmetrize``: (H + H^T)/2."""
    if theta is None:
        theta = flat.theta()
    theta = theta.detach().to(device=flat.device, dtype=flat.dtype)
    N = flat.n_params
    batch_size, chunk_size = _plan(flat.n, N, batch_size, chunk_size)
    eye = torch.eye(N, dtype=flat.dtype, device=flat.device)
    H = torch.zeros(N, N, dtype=flat.dtype, device=flat.device)
    for start in range(0, flat.n, batch_size):
        Xb, yb = flat.X[start : start + batch_size], flat.y[start : start + batch_size]

        def batch_loss(th, Xb=Xb, yb=yb):
            # This batch's share of the full-data mean (the MSE averages over all n x outputs values).
            return torch.sum((flat.predict(th, Xb) - yb) ** 2) / flat.y.numel()

        grad_fn = torch.func.grad(batch_loss)

        def hvp(v, grad_fn=grad_fn):
            return torch.func.jvp(grad_fn, (theta,), (v,))[1]

        with warnings.catch_warnings():
            # torch's first forward-mode call registers decompositions with the deprecated torch.jit.script;
            # that warning is torch-internal noise, not something a caller can act on.
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
            H += torch.func.vmap(hvp, chunk_size=chunk_size)(eye)
    if symmetrize:
        H = (H + H.T) / 2
    return H


def hessian(model: nn.Module, X, y, **kwargs) -> torch.Tensor:
    """Hessian of the MSE of ``model`` on (X, y) over all trainable parameters, float64 (:func:`hessian_matrix`)."""
    return hessian_matrix(FlatModel(model, X, y), **kwargs)


@dataclasses.dataclass
class Spectrum:
    """Eigen-decomposition of the loss Hessian at one point and the gradient there (Fig. 7): ``eigenvalues`` ascending,
    ``eigenvectors[:, i]`` paired with them, ``grad_projections[i] = |g . e_i|`` (first layer only with
    ``first_layer_only``, as the authors' notebook; their squares then no longer sum to |g|^2)."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    gradient: np.ndarray
    grad_projections: np.ndarray
    loss: float
    first_layer_only: bool = False

    @property
    def n_params(self) -> int:
        return int(self.eigenvalues.size)

    def descending(self) -> tuple[np.ndarray, np.ndarray]:
        """The spectrum in descending eigenvalue order, Fig. 7's x axis."""
        return self.eigenvalues[::-1].copy(), self.grad_projections[::-1].copy()

    def __repr__(self) -> str:
        counts = eigenvalue_counts(self)
        return (
            f"Spectrum(n_params={self.n_params}, top={top_eigenvalue(self):.3e}, "
            f"nonnegative={counts['nonnegative']}, negative={counts['negative']}, loss={self.loss:.3e}, "
            f"first_layer_only={self.first_layer_only})"
        )


def spectrum(
    model: nn.Module,
    X,
    y,
    *,
    first_layer_only: bool = False,
    batch_size: int | None = None,
    chunk_size: int | None = None,
) -> Spectrum:
    """Hessian spectrum, eigenvectors, gradient and |g . e_i| of the MSE of ``model`` on (X, y) (paper §4.1, Fig. 7).

    ``torch.linalg.eigh`` on the full float64 Hessian over all parameters.

    Parameters
    ----------
    model : torch.nn.Module
        A float64 model.
    X, y : array_like
        The data set.
    first_layer_only : bool, optional
        Project only the first-layer slice, as the authors' notebook (default False).
    batch_size, chunk_size : int, optional
        Memory settings of :func:`hessian_matrix`.

    Returns
    -------
    Spectrum
        Eigenvalues, eigenvectors, gradient and projections.
    """
    flat = FlatModel(model, X, y)
    theta = flat.theta()
    loss, grad = flat.loss_and_grad(theta)
    H = hessian_matrix(flat, theta, batch_size=batch_size, chunk_size=chunk_size)
    evals, evecs = torch.linalg.eigh(H)
    if first_layer_only:
        k = flat.first_param_size()
        proj = evecs[:k, :].T @ grad[:k]
    else:
        proj = evecs.T @ grad
    return Spectrum(
        eigenvalues=evals.cpu().numpy(),
        eigenvectors=evecs.cpu().numpy(),
        gradient=grad.cpu().numpy(),
        grad_projections=proj.abs().cpu().numpy(),
        loss=float(loss),
        first_layer_only=first_layer_only,
    )


def gradient_fraction_top_k(spec: Spectrum, k: int, by: str = "value") -> float:
    """Fraction of |g|^2 lying in the top-k eigendirections (paper §4.1: "the gradient tends to point most
    strongly in directions of higher curvature")."""
    if int(k) != k or not 0 <= k <= spec.n_params:
        raise ValueError(f"k must be an integer in [0, {spec.n_params}], got {k!r}")
    if by == "value":
        order = np.argsort(spec.eigenvalues)[::-1]
    elif by == "abs":
        order = np.argsort(np.abs(spec.eigenvalues))[::-1]
    else:
        raise ValueError(f"by must be 'value' or 'abs', got {by!r}")
    sq = spec.grad_projections**2
    total = float(np.sum(sq))
    if total == 0.0:
        raise ValueError("the gradient is zero: the fraction is undefined")
    return float(np.sum(sq[order[: int(k)]]) / total)


def eigenvalue_counts(spec: Spectrum) -> dict[str, int]:
    """Numbers of eigenvalues >= 0 and < 0 (read off the paper's Fig. 7: about 845 / 916 of 1761 after Adam)."""
    nonneg = int(np.sum(spec.eigenvalues >= 0))
    return {"nonnegative": nonneg, "negative": spec.n_params - nonneg}


def top_eigenvalue(spec: Spectrum) -> float:
    """The largest eigenvalue (read off the paper's Fig. 7: about 5-10 after Adam)."""
    return float(spec.eigenvalues[-1])
