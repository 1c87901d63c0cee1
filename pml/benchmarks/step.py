"""Seconds per training step: autograd against :mod:`pml.nn.fast_step`, on the paper's network shapes.

For each shape (depth, width, inputs, activation, members S, batch B) one Adam step is timed with autograd and with the
fast step (and, at depth 2, the torch kernel, the fallback where no compiler is found): the minimum over a few
interleaved repeats. The same run measures the machine's float64 GEMM rate, one tanh, and for deep and modular networks
the matrix products alone (row ``matmuls``, the floor of any step on the same BLAS). Shapes: the widths of Figs. 2, 5
and 6a at d = 3, d = 1-6 at depth 2, and Fig. 3's modular networks; batches as the sweeps', scaled down where the
benchmark's time or memory budget requires (the row shows both)."""

from __future__ import annotations

import sys
import time
from typing import Callable

import torch

from pml import equations
from pml.nn import fast_step, networks
from pml.nn.shapes import PAPER_WIDTHS

__all__ = ["format", "run", "shapes"]

BATCH_CAP = {"tanh": 30_000, "relu": 10_000}  # the sweeps' batch caps (Figs. 5/6a tanh, Figs. 2/5 ReLU)
UNIT_POINTS = {False: 4.0e7, True: 6.0e6}  # budget of S x B x hidden units per step (full, quick)


def shapes(quick: bool = False) -> list[dict]:
    """The benchmark's shapes: dicts of depth, width, dim, activation, members, batch, batch_paper, kind, equation."""
    out = []

    def add(depth, width, dim, activation, kind="dense", equation=None):
        if kind == "modular":
            graph = equations.get(equation).graph()
            n_params = networks.modular_param_count(graph, width, depth)
            layout = networks.modular_layout(graph, width, depth)
            hidden = sum(spec.width * (spec.depth - 1) for spec in layout)
            dim = equations.get(equation).dim
        else:
            n_params = networks.dense_param_count(dim, width, depth)
            hidden = width * (depth - 1)
        paper = min(n_params // (dim + 1), BATCH_CAP[activation] if kind == "dense" else 30_000)
        members = 4 if hidden <= 1024 and kind == "dense" else 1
        batch = max(1, min(paper, int(UNIT_POINTS[quick] // (members * hidden))))
        out.append(dict(kind=kind, equation=equation, depth=depth, width=width, dim=dim, activation=activation,
                        members=members, batch=batch, batch_paper=paper, n_params=n_params, hidden=hidden))

    widths2 = PAPER_WIDTHS[2] if not quick else (204, 3276, 52428)
    for activation in ("tanh", "relu"):
        for width in widths2:
            add(2, width, 3, activation)
        for dim in ((1, 2, 4, 5, 6) if not quick else (1, 6)):
            add(2, 3276, dim, activation)
        for depth in (3, 4):
            for width in (PAPER_WIDTHS[depth] if not quick else PAPER_WIDTHS[depth][2::3]):
                add(depth, width, 3, activation)
    for depth, width in (((4, 60), (4, 360), (4, 1500), (6, 720)) if not quick else ((4, 360),)):
        add(depth, width, 0, "relu", "modular", "I.8.14")
    return out


def _time(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Minimum seconds of each function, the repeats interleaved (a shared machine's load hits all alike)."""
    for fn in fns.values():
        fn()  # warm-up: first calls pay one-off allocations (and the compiled kernel's load)
    best = dict.fromkeys(fns, float("inf"))
    for k in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
        if k >= 1 and sum(best.values()) > 6.0:  # slow shapes: two rounds are enough
            break
    return best


def _model(shape: dict) -> torch.nn.Module:
    if shape["kind"] == "modular":
        return networks.ModularMLP(equations.get(shape["equation"]).graph(), shape["width"], shape["depth"],
                                   shape["activation"], seed=0)
    return networks.BatchedMLP(shape["dim"], shape["width"], shape["depth"], shape["activation"],
                               seeds=range(shape["members"]))


def _matmuls(shape: dict) -> Callable[[], None]:
    """The step's matrix products alone, on preallocated arrays: the floor of any step on the same BLAS."""
    S, B = shape["members"], shape["batch"]
    if shape["kind"] == "modular":
        layout = networks.modular_layout(equations.get(shape["equation"]).graph(), shape["width"], shape["depth"])
        nets = [[len(spec.inputs)] + [spec.width] * (spec.depth - 1) + [1] for spec in layout]
    else:
        nets = [[shape["dim"]] + [shape["width"]] * (shape["depth"] - 1) + [1]]
    ops, cache = [], {}

    def buf(*size):
        if size not in cache:
            cache[size] = torch.randn(*size, dtype=torch.float64)
        return cache[size]

    for sizes in nets:
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            h, w, z = buf(S, B, n_in), buf(S, n_out, n_in), buf(S, B, n_out)
            ops.append((h, w.transpose(1, 2), z.clone()))  # forward
            ops.append((z.transpose(1, 2), h, buf(S, n_out, n_in).clone()))  # weight gradient
            if l > 0:
                ops.append((z, w, h.clone()))  # input gradient

    def run():
        for a, b, out in ops:
            torch.bmm(a, b, out=out)

    return run


def _measure(shape: dict, repeats: int) -> list[dict]:
    S, B, d = shape["members"], shape["batch"], shape["dim"]
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(S, B, d, dtype=torch.float64, generator=gen)
    y = torch.randn(S, B, dtype=torch.float64, generator=gen)
    model = _model(shape)
    modular = shape["kind"] == "modular"
    forward = (lambda Z: model(Z[0]).reshape(1, -1)) if modular else (lambda Z: model(Z).reshape(S, B))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def autograd_step():
        optimizer.zero_grad(set_to_none=True)
        ((forward(X) - y) ** 2).mean(dim=1).sum().backward()
        optimizer.step()

    impls = {"autograd": ("autograd", autograd_step)}
    kernel = fast_step.choose_kernel(model, "fast")
    kernels = [kernel] + (["torch"] if kernel == "compiled" else [])
    for k in kernels:
        if k == "autograd":
            continue  # no fast kernel for this network: "fast" is autograd (its row below says so)
        step = fast_step.FastStep(model, k)

        def fast(step=step):
            optimizer.zero_grad(set_to_none=True)
            step(X, y)
            optimizer.step()

        impls["fast" if k == kernel else "fast-torch"] = (k, fast)
    if shape["kind"] == "modular" or shape["depth"] >= 3:  # matrix products dominate: their floor
        impls["matmuls"] = ("-", _matmuls(shape))
    seconds = _time({name: fn for name, (_, fn) in impls.items()}, repeats)
    if kernel == "autograd":
        seconds["fast"] = seconds["autograd"]
        impls["fast"] = ("autograd", None)
    label = (f"{shape['kind']} {shape['equation']} " if modular else "") + (
        f"depth {shape['depth']}, d {d}, W {shape['width']}, S {S}, B {B}"
        + (f" (sweeps: {shape['batch_paper']})" if B != shape["batch_paper"] else ""))
    rows = []
    for name, (k, _) in impls.items():
        t = seconds[name]
        rows.append(dict(shape=label, activation=shape["activation"], impl=name, kernel=k, seconds=t,
                         ns_per_unit_point=t / (S * B * shape["hidden"]) * 1e9,
                         ns_per_parameter_point=t / (S * B * shape["n_params"]) * 1e9,
                         ratio=seconds["autograd"] / t, **{key: shape[key] for key in (
                             "kind", "depth", "width", "dim", "members", "batch", "batch_paper", "n_params",
                             "hidden")}))
    return rows


def _limits(repeats: int) -> dict:
    a = torch.randn(4096, 512, dtype=torch.float64)
    b = torch.randn(512, 512, dtype=torch.float64)
    out = torch.empty(4096, 512, dtype=torch.float64)
    x = torch.randn(1 << 22, dtype=torch.float64)
    y = torch.empty_like(x)
    fns = {"gemm": lambda: torch.mm(a, b, out=out), "tanh_torch": lambda: torch.tanh(x, out=y)}
    module = fast_step.compiled_kernel()
    if module is not None:
        fns["tanh_kernel"] = lambda: module.tanh_(y.copy_(x))
        fns["copy"] = lambda: y.copy_(x)  # the kernel's tanh works in place: its copy is subtracted
    t = _time(fns, repeats)
    limits = {"gemm_gflops": 2 * 4096 * 512 * 512 / t["gemm"] / 1e9, "tanh_ns_torch": t["tanh_torch"] / x.numel() * 1e9}
    if module is not None:
        limits["tanh_ns_kernel"] = max(t["tanh_kernel"] - t["copy"], 0.0) / x.numel() * 1e9
    return limits


def run(quick: bool = False, repeats: int = 3, threads: int | None = 1, progress: bool = False) -> dict:
    """Time the autograd and the fast step on :func:`shapes`; about 5 minutes (``quick``: about 1) on one core."""
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        info = fast_step.kernel_info()
        limits = _limits(repeats)
        rows = []
        for shape in shapes(quick):
            if progress:
                print(f"step: {shape}", file=sys.stderr, flush=True)
            rows += _measure(shape, repeats)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {"threads": used, "quick": bool(quick), "limits": limits, "kernel": info, "rows": rows}


def _summary(rows: list[dict]) -> list[str]:
    def ratios(pred):
        return [r["ratio"] for r in rows if r["impl"] == "fast" and pred(r)]

    lines = []
    for act, target in (("tanh", 6), ("relu", 15)):
        got = ratios(lambda r, act=act: r["kind"] == "dense" and r["depth"] == 2 and r["activation"] == act
                     and r["width"] >= 3276)
        if got:
            lines.append(f"depth 2 {act}, W >= 3276: fast/autograd speed-up {min(got):.1f}x to {max(got):.1f}x "
                         f"(target {target}x)")
    for depth in (3, 4):
        got = ratios(lambda r, depth=depth: r["kind"] == "dense" and r["depth"] == depth)
        if got:
            lines.append(f"depth {depth}: {min(got):.2f}x to {max(got):.2f}x (target 2x)")
    got = ratios(lambda r: r["kind"] == "modular")
    if got:
        lines.append(f"modular: {min(got):.2f}x to {max(got):.2f}x (target 2x)")
    floors = [r for r in rows if r["impl"] == "matmuls" and r["members"] * r["batch"] * r["hidden"] >= 1e7]
    if floors:
        lines.append("largest shapes, autograd over their matrix products alone (the most any step could gain): "
                     + ", ".join(f"{r['shape'].split(' (')[0]} {r['activation']} {r['ratio']:.2f}x" for r in floors))
    return lines


def format(result: dict) -> str:
    """The table of :func:`run`'s result."""
    lim, info = result["limits"], result["kernel"]
    kernel = (f"compiled kernel: {info['isa']}, {info['lanes']} lanes, tanh {info['tanh']}" if info["available"]
              else f"compiled kernel not available: {info['error']}")
    head = [f"pml bench step: seconds per Adam step (min of repeats), {result['threads']} thread(s); {kernel}",
            f"limits: float64 GEMM {lim['gemm_gflops']:.1f} GFLOP/s; tanh {lim['tanh_ns_torch']:.2f} ns (torch)"
            + (f", {lim['tanh_ns_kernel']:.2f} ns (kernel)" if "tanh_ns_kernel" in lim else ""),
            "", f"{'shape':<56} {'act':<5} {'impl':<11} {'kernel':<9} {'seconds':>9} {'ns/unit-pt':>10} "
                f"{'ns/param-pt':>11} {'ratio':>6}"]
    body = [f"{r['shape']:<56} {r['activation']:<5} {r['impl']:<11} {r['kernel']:<9} {r['seconds']:>9.4f} "
            f"{r['ns_per_unit_point']:>10.2f} {r['ns_per_parameter_point']:>11.3f} {r['ratio']:>6.2f}"
            for r in result["rows"]]
    return "\n".join(head + body + [""] + _summary(result["rows"]))
