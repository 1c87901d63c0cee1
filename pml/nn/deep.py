"""Deep tanh networks trained by Levenberg-Marquardt in float64, for 3-6 dimensional data.

Paper: Michaud, Liu & Tegmark, "Precision Machine Learning", §5 ("for higher-dimensional problems (d >= 3), neural
networks are typically the most promising choice, since they can learn compositional modular structure") and §4.2
(second-order training and boosting). The recipe:

1. inputs scaled to [-1, 1] by the data's box, targets standardised;
2. a tanh network of depth 3 or 4 (``depth`` = number of linear layers) whose width is chosen from the rows
   available, so that the parameters stay well below the training rows (``params_per_row``);
3. the start: PyTorch's default initialisation (``start="default"``), or with ``start="readout"`` the exact
   least-squares output layer on the random hidden features (the variable-projection start of
   :mod:`pml.nn.readout`). The default is the measured faster one: from the least-squares start, LM made fewer
   iterations per second on I.30.5 (its large, cancelling output weights raise the rounding-noise level that the
   step test of :func:`pml.nn.lm.least_squares` must clear);
4. every weight trained by Levenberg-Marquardt (:func:`pml.nn.lm.train`, streaming-QR solver; identity damping,
   which made 2.5x the iterations of Jacobian scaling in the same time on I.30.5);
   the validation error is checked as it trains and the best weights are kept (early stopping on held-out rows);
5. residual stages of the same depth fitted to what is left, kept only when the validation error falls, merged
   into one network (:func:`pml.nn.boosting.merge_stages`; the paper's boosting, §4.2).

Architecture (depth, width) and stopping are chosen on the validation split only, never on test points.

The time limit: an LM iteration cannot be interrupted, so a network is only trained when one iteration of it
(modelled from one timed SVD: the step's SVD of a p x p matrix and the streaming QR of the n x p Jacobian) takes
at most ``1 / MIN_ITERATIONS`` of the time limit: a default architecture is narrowed until it does, and
:class:`TooSlow` says when not even the narrowest one does; a training run stops before an iteration that would
end past its limit (the last one's duration predicts the next's), keeping its best weights.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pml.nn import boosting, lm, networks, readout
from pml.threads import limit_threads

__all__ = ["DeepFit", "MIN_ITERATIONS", "TooSlow", "candidate_widths", "fit", "iteration_seconds", "train_network"]

MIN_ITERATIONS = 40  # a network is trained only if this many LM iterations fit in the time limit


class TooSlow(ValueError):
    """Not even the narrowest network makes ``MIN_ITERATIONS`` LM iterations within the time limit."""


def _svd_seconds_per_cube(num_threads: int | None) -> float:
    """Seconds per p^3 of the LM step's SVD (LAPACK gesvd of a p x p matrix) now: one timed 256 x 256 SVD."""
    import scipy.linalg

    A = np.random.default_rng(0).standard_normal((256, 256))
    best = math.inf
    with limit_threads(num_threads):
        for _ in range(2):
            t = time.perf_counter()
            scipy.linalg.svd(A, full_matrices=False, check_finite=False, lapack_driver="gesvd")
            best = min(best, time.perf_counter() - t)
    return best / 256**3


def iteration_seconds(n_rows: int, n_params: int, per_cube: float) -> float:
    """Modelled seconds of one LM iteration (:func:`pml.nn.lm.least_squares`) of a network with ``n_params``
    parameters on ``n_rows`` rows, given the seconds per p^3 of a p x p SVD.

    The step's SVD of the p x p factor (one p^3 unit), and, at a fortieth of an SVD's speed per flop (QR and
    matrix products run much faster than LAPACK's gesvd), the streaming QR of the Jacobian (4/3 p^3 per block of
    rows and 2 n p^2) and the per-sample Jacobian and trial steps (about 50 n p).

    Parameters
    ----------
    n_rows : int
        Training rows.
    n_params : int
        Parameters p.
    per_cube : float
        Seconds per p^3 of a p x p SVD.

    Returns
    -------
    float
        Seconds.
    """
    p, n = float(n_params), float(n_rows)
    chunk = max(1.0, lm.DEFAULT_MAX_JACOBIAN_BYTES / (32.0 * p))  # rows per Jacobian block (pml.nn.lm._chunk_rows)
    blocks = math.ceil(n / chunk)
    return per_cube * (p**3 + (blocks * 4 / 3 * p**3 + 2 * n * p * p + 50 * n * p) / 40)


def candidate_widths(d: int, n_train: int, depths: Sequence[int] = (3, 4), params_per_row: float = 0.25,
                     max_params: int = 1200, min_width: int = 6, max_width: int = 64) -> list[tuple[int, int]]:
    """(depth, width) per depth: the widest network with at most ``params_per_row * n_train`` (and ``max_params``)
    parameters, at least ``min_width`` units wide.

    Parameters
    ----------
    d : int
        Number of inputs.
    n_train : int
        Training rows.
    depths : sequence of int, optional
        Depths (default 3 and 4).
    params_per_row : float, optional
        Parameter budget per row (default 0.25).
    max_params : int, optional
        Largest parameter count (default 1200).
    min_width, max_width : int, optional
        Width bounds (defaults 6, 64).

    Returns
    -------
    list of (int, int)
        (depth, width) per depth.
    """
    budget = min(int(max_params), int(params_per_row * n_train))
    out = []
    for depth in depths:
        w = min_width
        while w < max_width and networks.dense_param_count(d, w + 1, depth) <= budget:
            w += 1
        out.append((int(depth), int(w)))
    return out


@dataclasses.dataclass
class DeepFit:
    """A fitted deep network on scaled inputs: ``network(Z)`` with Z = (X - centre) / half, output in y units.

    Used by :func:`pml.fitting.fit` (method ``"deep-lm"``).

    Parameters
    ----------
    network : torch.nn.Sequential
        The network (stages merged).
    centre, half : numpy.ndarray
        The input scaling.
    depth, width, n_stages : int
        Architecture and number of stages.
    val_rel_rmse : float
        Validation relative RMSE.
    history : list of dict
        What each candidate and stage gave.
    seconds : float
        Wall time.
    """

    network: nn.Sequential
    centre: np.ndarray
    half: np.ndarray
    depth: int
    width: int
    n_stages: int
    val_rel_rmse: float
    history: list[dict]
    seconds: float

    def predict(self, X) -> np.ndarray:
        """Predictions on raw inputs.

        Parameters
        ----------
        X : array_like
            (n, d) inputs.

        Returns
        -------
        numpy.ndarray
            (n,) predictions.
        """
        Z = (np.asarray(X, dtype=np.float64).reshape(-1, self.centre.size) - self.centre) / self.half
        with torch.no_grad():
            return self.network(torch.from_numpy(np.ascontiguousarray(Z))).reshape(-1).numpy().copy()

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                for m in self.network if isinstance(m, nn.Linear)]


def _readout_start(net: nn.Sequential, Z: np.ndarray, t: np.ndarray) -> None:
    with torch.no_grad():
        H = nn.Sequential(*list(net)[:-1])(torch.from_numpy(Z)).numpy()
    c, c0, _ = readout.solve_readout(H, t, rcond=1e-12, refine_steps=1)
    last = net[len(net) - 1]
    with torch.no_grad():
        last.weight.copy_(torch.from_numpy(c).reshape(1, -1))
        last.bias.fill_(c0)


def train_network(Z: np.ndarray, t: np.ndarray, Zv: np.ndarray, tv: np.ndarray, *, depth: int, width: int,
                  seed: int = 0, max_iter: int = 2000, time_limit: float | None = None, check_every: int = 5,
                  patience: int = 40, callback: Callable[[float], None] | None = None,
                  net: nn.Sequential | None = None, start: str = "default") -> tuple[nn.Sequential, float, int, str]:
    """One tanh network on (Z, t), LM-trained from an exact least-squares output layer; the weights with the
    smallest validation RMSE on (Zv, tv) (checked every ``check_every`` iterations) are kept. Training stops after
    ``patience`` checks without improvement, at ``max_iter`` or at ``time_limit`` seconds.

    ``net``: train a copy of this network on from its weights instead of a fresh one.
    Returns (network, validation RMSE, iterations, stop reason).

    Parameters
    ----------
    Z, t : numpy.ndarray
        Scaled training inputs and targets.
    Zv, tv : numpy.ndarray
        Scaled validation inputs and targets.
    depth, width : int
        The architecture.
    seed : int, optional
        The seed (default 0).
    max_iter : int, optional
        LM iterations (default 2000).
    time_limit : float, optional
        Seconds.
    check_every, patience : int, optional
        Validation checks (defaults 5 and 40).
    callback : callable, optional
        Called with each validation RMSE.
    net : torch.nn.Sequential, optional
        Start from a copy of this network.
    start : str, optional
        "default" (PyTorch's initialisation) or "readout" (exact least-squares output layer).

    Returns
    -------
    tuple
        (network, validation RMSE, iterations, stop reason).
    """
    if net is None:
        net = networks.make_mlp(Z.shape[1], int(width), int(depth), "tanh", seed=seed)
        if start == "readout":
            _readout_start(net, Z, t)
        elif start != "default":
            raise ValueError(f"start must be 'default' or 'readout', got {start!r}")
    else:
        net = copy.deepcopy(net)
    probe = copy.deepcopy(net)
    Zv_t = torch.from_numpy(np.ascontiguousarray(Zv))
    tv_t = torch.from_numpy(np.ascontiguousarray(tv))

    def val_rmse(model) -> float:
        with torch.no_grad():
            return float(torch.sqrt(torch.mean((model(Zv_t).reshape(-1) - tv_t) ** 2)))

    best = {"val": val_rmse(net), "theta": lm.flat_params(net), "since": 0}
    last = {"time": 0.0}

    def on_iter(row: dict) -> bool:
        # stop before an iteration that would end past the limit: the last one's duration predicts the next's
        took, last["time"] = row["time_s"] - last["time"], row["time_s"]
        late = time_limit is not None and row["time_s"] + took > time_limit
        if row["step"] % check_every and not late:
            return False
        torch.nn.utils.vector_to_parameters(torch.from_numpy(row["theta"]), probe.parameters())
        v = val_rmse(probe)
        if v < best["val"]:
            best.update(val=v, theta=row["theta"].copy(), since=0)
        else:
            best["since"] += 1
        if callback is not None:
            callback(best["val"])
        return late or best["since"] >= patience

    res = lm.train(net, Z, t, options=lm.LMOptions(max_iter=int(max_iter), time_limit=time_limit),
                   callback=on_iter, num_threads=None)
    final = val_rmse(net)
    if final < best["val"]:
        best.update(val=final, theta=lm.flat_params(net))
    torch.nn.utils.vector_to_parameters(torch.from_numpy(best["theta"]), net.parameters())
    return net, best["val"], int(res.n_iter), res.stop_reason


def _within_time(archs, d: int, n_train: int, time_limit: float, num_threads, narrow: bool, min_width: int = 6):
    """The architectures of which MIN_ITERATIONS LM iterations fit in ``time_limit`` (``narrow``: a too slow one is
    narrowed, down to ``min_width``, until they do); :class:`TooSlow` if none."""
    per_cube = _svd_seconds_per_cube(num_threads)
    most = time_limit / MIN_ITERATIONS

    def seconds(depth, width):
        return iteration_seconds(n_train, networks.dense_param_count(d, width, depth), per_cube)

    kept = []
    for depth, width in archs:
        while narrow and width > min_width and seconds(depth, width) > most:
            width -= 1
        if seconds(depth, width) <= most:
            kept.append((int(depth), int(width)))
    if not kept:
        depth, width = min(archs, key=lambda a: seconds(*a))
        width = min(width, min_width) if narrow else width
        raise TooSlow(f"one Levenberg-Marquardt iteration of the smallest network (depth {depth}, width {width}, "
                      f"{networks.dense_param_count(d, width, depth)} parameters) on {n_train} rows takes about "
                      f"{seconds(depth, width):.2g} s here: fewer than {MIN_ITERATIONS} iterations fit in the time "
                      f"limit ({time_limit:.3g} s)")
    return kept


def _scale_and_split(X: np.ndarray, y: np.ndarray, box, X_val, y_val, validation: float, seed: int):
    """Inputs scaled to [-1, 1] by ``box`` (default: the training rows' ranges) and the training/validation split
    (given validation rows go after the training rows) -> (scaled inputs, targets, tr, va, centre, half)."""
    n, d = X.shape
    if box is None:
        lo, hi = X.min(axis=0), X.max(axis=0)
    else:
        lo, hi = np.asarray(box, dtype=np.float64).T
    centre, half = (lo + hi) / 2, np.where(hi > lo, (hi - lo) / 2, 1.0)
    if X_val is None:
        perm = np.random.default_rng([seed, 29]).permutation(n)
        n_va = max(1, int(round(validation * n)))
        va, tr = np.sort(perm[:n_va]), np.sort(perm[n_va:])
    else:  # given validation rows go after the training rows
        X = np.concatenate([X, np.asarray(X_val, dtype=np.float64).reshape(-1, d)])
        y = np.concatenate([y, np.asarray(y_val, dtype=np.float64).reshape(-1)])
        tr, va = np.arange(n), np.arange(n, X.shape[0])
    return (X - centre) / half, y, tr, va, centre, half


@dataclasses.dataclass
class _Training:
    """The standardised rows of a deep fit and their split, its clock and options, and what each network gave."""

    Z: np.ndarray
    t: np.ndarray
    tr: np.ndarray
    va: np.ndarray
    t_rms: float  # the validation targets' RMS in standardised units: relative errors are of y, not of t
    t0: float
    time_limit: float
    max_iter: int
    start: str
    seed: int
    callback: Callable[[str, float], None] | None
    history: list[dict] = dataclasses.field(default_factory=list)

    def left(self) -> float:
        """Seconds left of the time limit."""
        return self.time_limit - (time.perf_counter() - self.t0)

    def report(self, label: str):
        """The progress callback of one network (None without a ``callback``)."""
        return (lambda v: self.callback(label, v / self.t_rms)) if self.callback is not None else None

    def record(self, stage: int, depth: int, width: int, v: float, iterations: int, stop: str) -> None:
        """One trained network in the history (validation RMSE ``v`` in standardised units)."""
        self.history.append({"stage": stage, "depth": depth, "width": width, "val_rel_rmse": v / self.t_rms,
                             "iterations": iterations, "stop": stop, "seconds": time.perf_counter() - self.t0})


def _first_stage(run: _Training, archs: list, probe_fraction: float, min_probe_seconds: float, n_stages: int):
    """Each architecture trained for its share of ``probe_fraction`` of the limit, the best one trained on with its
    stage's share if the limit stopped it -> (network, validation RMSE, depth, width)."""
    Z, t, tr, va, time_limit = run.Z, run.t, run.tr, run.va, run.time_limit
    if time_limit < min_probe_seconds:  # too little time to compare: the first architecture trains alone
        archs = archs[:1]
    probe_each = probe_fraction * time_limit / max(1, len(archs)) if len(archs) > 1 else time_limit / n_stages
    nets = []
    for k, (depth, width) in enumerate(archs):
        if k and run.left() < probe_each:
            break
        if run.left() <= 0:  # the setup (data, architectures) took the whole limit
            raise TooSlow(f"the time limit ({time_limit:.3g} s) was spent before the first network could train")
        label = f"depth {depth} width {width}"
        net, v, its, stop = train_network(Z[tr], t[tr], Z[va], t[va], depth=depth, width=width, seed=run.seed,
                                          max_iter=run.max_iter, time_limit=min(probe_each, run.left()),
                                          callback=run.report(label), start=run.start)
        run.record(1, depth, width, v, its, stop)
        nets.append((v, k, net))
    v_best, k_best, net = min(nets, key=lambda e: (e[0], e[1]))
    depth, width = archs[k_best]
    stage_share = run.left() / max(1, n_stages)
    if stage_share > 1.0 and run.history[k_best]["stop"] in ("time_limit",):
        # go on training the winner (a fresh LM run from its best weights)
        cont, v, its, stop = train_network(Z[tr], t[tr], Z[va], t[va], depth=depth, width=width, net=net,
                                           max_iter=run.max_iter, time_limit=stage_share,
                                           callback=run.report(f"depth {depth} width {width}"))
        run.record(1, depth, width, v, its, stop)
        if v < v_best:
            net, v_best = cont, v
    return net, v_best, depth, width


def _residual_stages(run: _Training, net: nn.Sequential, v_best: float, depth: int, width: int, n_stages: int):
    """Residual stages of the same architecture, each kept only if the validation error falls (the paper's
    boosting, §4.2) -> (stage networks, their scales, validation RMSE)."""
    Z, t, tr, va = run.Z, run.t, run.tr, run.va
    stages, scales = [net], [1.0]
    for s in range(2, int(n_stages) + 1):
        budget = run.left() / max(1, n_stages - s + 1)
        if budget < 1.0:
            break
        merged = boosting.merge_stages(stages, scales)
        with torch.no_grad():
            r_tr = t[tr] - merged(torch.from_numpy(Z[tr])).reshape(-1).numpy()
            r_va = t[va] - merged(torch.from_numpy(Z[va])).reshape(-1).numpy()
        scale = float(np.sqrt(np.mean(r_tr**2))) or 1.0
        tick = run.report(f"stage {s}")
        net_s, v_s, its, stop = train_network(Z[tr], r_tr / scale, Z[va], r_va / scale, depth=depth,
                                              width=width, seed=run.seed + s, max_iter=run.max_iter,
                                              time_limit=budget, start=run.start,
                                              callback=(lambda v, sc=scale, f=tick: f(v * sc)) if tick else None)
        v_s *= scale
        run.record(s, depth, width, v_s, its, stop)
        if not v_s < v_best:
            break
        stages.append(net_s)
        scales.append(scale)
        v_best = v_s
    return stages, scales, v_best


def fit(X, y, *, box=None, architectures: Sequence[tuple[int, int]] | None = None, depths=(3, 4),
        params_per_row: float = 0.25, max_params: int = 1200, flops_per_iteration: float = 1.5e9, n_stages: int = 2,
        probe_fraction: float = 0.3, min_probe_seconds: float = 200.0, start: str = "default",
        max_iter: int = 3000, validation: float = 0.2, seed: int = 0, time_limit: float = 120.0,
        callback: Callable[[str, float], None] | None = None, num_threads: int | None = 1, X_val=None,
        y_val=None) -> DeepFit:
    """Fit a deep tanh network to (X, y) by LM (module docstring) within ``time_limit`` seconds.

    ``architectures``: (depth, width) pairs to compare (default :func:`candidate_widths` for ``depths``). Each gets
    ``probe_fraction`` of the budget divided among them; the one with the smallest validation error trains on with
    what is left of the first stage's share, and up to ``n_stages - 1`` residual stages share the rest.
    ``callback(label, val_rel_rmse)`` reports progress (for progress bars). ``X_val``, ``y_val``: validation rows
    to choose on instead of a ``validation`` fraction of (X, y) (then every row of X is a training row).

    Parameters
    ----------
    X, y : array_like
        (n, d) inputs and (n,) targets.
    box : array_like, optional
        (d, 2) input ranges.
    architectures : sequence of (int, int), optional
        (depth, width) pairs.
    depths, params_per_row, max_params
        As :func:`candidate_widths`.
    flops_per_iteration : float, optional
        Cost model of one LM iteration.
    n_stages : int, optional
        Stages (default 2).
    probe_fraction : float, optional
        Share of the budget for comparing architectures (default 0.3).
    min_probe_seconds : float, optional
        Below this budget only the first architecture is trained (default 200).
    start : str, optional
        "default" (PyTorch's initialisation) or "readout" (exact least-squares output layer).
    max_iter : int, optional
        LM iterations per network (default 3000).
    validation : float, optional
        Validation fraction (default 0.2).
    seed : int, optional
        The seed (default 0).
    time_limit : float, optional
        Seconds, positive (default 120).
    callback : callable, optional
        ``callback(label, val_rel_rmse)``.
    num_threads : int or None, optional
        Torch threads (default 1).
    X_val, y_val : array_like, optional
        Validation rows.

    Returns
    -------
    DeepFit
        The fitted network.

    Raises
    ------
    TooSlow
        If not even the smallest architecture makes ``MIN_ITERATIONS`` LM iterations within the time limit.
    ValueError
        For a non-positive time limit.
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    d = X.shape[1]
    if not (isinstance(time_limit, (int, float)) and time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    Z, y, tr, va, centre, half = _scale_and_split(X, y, box, X_val, y_val, validation, seed)
    y_mean, y_scale = float(np.mean(y[tr])), float(np.std(y[tr])) or 1.0
    t = (y - y_mean) / y_scale
    # An LM iteration costs ~ 2 n p^2 flops (the streaming QR): cap p so that an iteration stays ~ flops_per_iteration.
    max_params = min(int(max_params), int(math.sqrt(flops_per_iteration / max(1, tr.size))))
    archs = list(architectures) if architectures else candidate_widths(d, tr.size, depths, params_per_row,
                                                                        max_params)
    archs = _within_time(archs, d, tr.size, time_limit, num_threads, narrow=not architectures)
    t_rms = float(np.sqrt(np.mean(y[va] ** 2))) / y_scale or 1.0  # relative errors are of y, not of t
    run = _Training(Z, t, tr, va, t_rms, t0, time_limit, max_iter, start, seed, callback)
    with limit_threads(num_threads):
        net, v_best, depth, width = _first_stage(run, archs, probe_fraction, min_probe_seconds, n_stages)
        stages, scales, v_best = _residual_stages(run, net, v_best, depth, width, n_stages)
    merged = boosting.merge_stages(stages, scales)
    last = [m for m in merged if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # standardised -> y units
        last.weight.mul_(y_scale)
        last.bias.mul_(y_scale).add_(y_mean)
    return DeepFit(merged, centre, half, depth, width, len(stages), v_best / t_rms, run.history,
                   time.perf_counter() - t0)
