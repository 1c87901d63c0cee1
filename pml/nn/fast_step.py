"""A fast training step for dense MLPs in float64: MSE loss and its gradients without autograd.

Autograd allocates several (points x hidden units) arrays per step, which for the wide networks of Figs. 2, 5 and 6a is
most of the time. :class:`FastStep` writes the same gradients into ``.grad`` (so Adam runs unchanged) with a fused C++
kernel (``fast_step.cpp``, built at first use; one hidden layer, tanh or ReLU, gradients summed in a fixed order
whatever the threads) or a pure-torch kernel (any depth, modular networks; run it on one thread on a busy machine). Both
equal autograd's results up to rounding, which is why the step implementation is part of a task's key;
:func:`choose_kernel` says which kernel runs."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import sysconfig
import threading
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "KERNELS",
    "STEP_IMPLS",
    "FastStep",
    "choose_kernel",
    "compiled_kernel",
    "kernel_info",
    "unsupported_reason",
]

STEP_IMPLS = ("autograd", "fast", "compiled", "torch")
"""Values of ``TrainConfig.step_impl``: ``"autograd"`` (forward, then ``backward()``), ``"fast"`` (the compiled kernel
where it applies and builds, else the torch kernel; autograd for networks neither supports and off the CPU),
``"compiled"`` and ``"torch"`` (that kernel or an error)."""

KERNELS = ("compiled", "torch")
"""The two implementations of :class:`FastStep`."""

SOURCE = Path(__file__).with_name("fast_step.cpp")
# sha256 of fast_step.cpp (first 16 hex digits): the kernel's source is not Python, so this line ties it to this
# module's source and through it to the key of every task that trains with it (a test checks that it is current).
KERNEL_DIGEST = "d02b081376a32de3"

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {"tried": False, "module": None, "error": None}
_ACTIVATIONS = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_ACT_CODE = {"tanh": 0, "relu": 1}
MAX_DIM = 64  # inputs the compiled kernel takes (its source's MAX_DIM)


def _cpu_tag() -> str:
    """A short tag of the CPU's instruction sets: the kernel is built with -march=native, so a build directory shared
    by different machines (a cluster's home) keeps one build per CPU type."""
    text = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@contextlib.contextmanager
def _ninja_on_path():
    """torch finds ``ninja`` on PATH; the pip-installed one sits next to this interpreter's scripts, which is not on
    PATH when the virtual environment is used without activating it."""
    scripts = sysconfig.get_path("scripts")
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = scripts + os.pathsep + old if scripts else old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _build():
    from torch.utils import cpp_extension

    # -O3 -march=native: the machine's SIMD width; -ffp-contract=off: rounding fixed by the source (explicit FMAs).
    flags = ["-O3", "-march=native", "-ffp-contract=off"]
    name = f"pml_fast_step_{KERNEL_DIGEST}_{_cpu_tag()}"
    errors = []
    with _ninja_on_path():
        for suffix, cflags, ldflags in (("_mvec", ["-DPML_MVEC"], ["-lmvec"]), ("", [], [])):
            try:
                return cpp_extension.load(name=name + suffix, sources=[str(SOURCE)], extra_cflags=flags + cflags,
                                          extra_ldflags=ldflags, verbose=False)
            except Exception as exc:  # no compiler, no ninja, no libmvec: try the next variant, then give up
                errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
    raise RuntimeError("; ".join(errors))


def compiled_kernel():
    """The compiled kernel's module, built (once per process, cached on disk) at the first call; None if it cannot be.
    """
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["module"] = _build()
            except Exception as exc:
                _state["error"] = str(exc)
                _log.warning("pml: the compiled training step could not be built (%s); using the pure-torch step",
                             exc)
        return _state["module"]


def kernel_info() -> dict:
    """How the compiled kernel was built (ISA, SIMD lanes, tanh), or why it is not available; builds it if needed."""
    module = compiled_kernel()
    if module is None:
        return {"available": False, "error": _state["error"]}
    return {"available": True, **module.info()}


# ---------------------------------------------------------------------------------------------------------------------
# Which networks, which kernel
# ---------------------------------------------------------------------------------------------------------------------


def _dense_layers(model: nn.Module):
    """(weights (S, out, in), biases (S, out), parameters in the same order, activation) of a dense MLP, else a reason.
    """
    from pml.nn import networks

    if isinstance(model, networks.BatchedMLP):
        if model.activation not in _ACT_CODE:
            return f"activation {model.activation!r} (supported: {sorted(_ACT_CODE)})"
        weights, biases = list(model.weights), list(model.biases)
        params = [p for pair in zip(weights, biases) for p in pair]
        return weights, biases, params, model.activation
    if not isinstance(model, nn.Sequential):
        return f"a {type(model).__name__} (supported: BatchedMLP and make_mlp's nn.Sequential)"
    layers = list(model)
    linears, acts = layers[0::2], layers[1::2]
    if len(linears) < 2 or len(acts) != len(linears) - 1 or not all(isinstance(m, nn.Linear) for m in linears):
        return "an nn.Sequential that is not Linear, activation, ..., Linear"
    kinds = {_ACTIVATIONS.get(type(a)) for a in acts}
    if len(kinds) != 1 or None in kinds:
        return f"activations {sorted({type(a).__name__ for a in acts})} (supported: one of Tanh, ReLU)"
    if any(lin.bias is None for lin in linears) or linears[-1].out_features != 1:
        return "layers without bias or more than one output"
    weights = [lin.weight.unsqueeze(0) for lin in linears]
    biases = [lin.bias.unsqueeze(0) for lin in linears]
    params = [p for lin in linears for p in (lin.weight, lin.bias)]
    return weights, biases, params, kinds.pop()


def unsupported_reason(model: nn.Module, kernel: str) -> str | None:
    """Why ``kernel`` cannot train ``model`` (None if it can; the compiled kernel is not built by this check)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid: {list(KERNELS)}")
    from pml.nn import networks

    if isinstance(model, networks.ModularMLP):
        if kernel == "compiled":
            return "a ModularMLP (the compiled kernel trains dense networks; the torch kernel trains modular ones)"
        if model.activation not in _ACT_CODE:
            return f"activation {model.activation!r} (supported: {sorted(_ACT_CODE)})"
        params = list(model.parameters())
        if any(p.dtype != torch.float64 for p in params):
            return "parameters that are not float64"
        return "frozen parameters" if any(p.requires_grad is False for p in params) else None
    layers = _dense_layers(model)
    if isinstance(layers, str):
        return layers
    weights = layers[0]
    if any(p.dtype != torch.float64 for p in layers[2]):
        return "parameters that are not float64"
    if any(p.requires_grad is False for p in layers[2]):
        return "frozen parameters"
    if kernel == "compiled":
        if len(weights) != 2:
            return f"depth {len(weights)} (the compiled kernel has one hidden layer, depth 2)"
        if weights[0].device.type != "cpu":
            return f"device {weights[0].device} (the compiled kernel runs on the CPU)"
        if weights[0].shape[2] > MAX_DIM:
            return f"{weights[0].shape[2]} inputs (the compiled kernel takes at most {MAX_DIM})"
    return None


def choose_kernel(model: nn.Module, step_impl: str) -> str:
    """The kernel that trains ``model`` under ``step_impl``: "compiled", "torch" or "autograd"."""
    if step_impl not in STEP_IMPLS:
        raise ValueError(f"unknown step_impl {step_impl!r}; valid: {list(STEP_IMPLS)}")
    if step_impl == "autograd":
        return "autograd"
    if step_impl in KERNELS:
        reason = unsupported_reason(model, step_impl)
        if reason is not None:
            raise ValueError(f"step_impl {step_impl!r} cannot train {reason}")
        if step_impl == "compiled" and compiled_kernel() is None:
            raise ValueError(f"step_impl 'compiled': the kernel could not be built ({_state['error']})")
        return step_impl
    if unsupported_reason(model, "torch") is not None:
        return "autograd"
    if next(model.parameters()).device.type != "cpu":
        return "autograd"
    if unsupported_reason(model, "compiled") is None and compiled_kernel() is not None:
        return "compiled"
    return "torch"


# ---------------------------------------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------------------------------------


class FastStep:
    """Per-member batch MSE and its gradients for a dense MLP, without autograd; one reusable workspace."""

    def __init__(self, model: nn.Module, kernel: str = "auto", chunk_points: int | None = None,
                 block_points: int | None = None):
        if kernel == "auto":
            kernel = choose_kernel(model, "fast")
            if kernel == "autograd":
                raise ValueError(f"FastStep cannot train {unsupported_reason(model, 'torch') or 'on this device'}")
        else:
            kernel = choose_kernel(model, kernel)
        from pml.nn import networks

        self._modular = None
        self.chunk_points = chunk_points
        if isinstance(model, networks.ModularMLP):
            self.kernel, self.activation, self.n_members = kernel, model.activation, 1
            self.n_inputs = len(model.variables)
            self._modular = _ModularTorch(model, chunk_points)
            return
        weights, biases, params, activation = _dense_layers(model)
        self.kernel, self.activation = kernel, activation
        self.weights, self.biases, self.params = weights, biases, params
        self.n_members, self.n_inputs = weights[0].shape[0], weights[0].shape[2]
        self.grad_w = [torch.zeros_like(w, memory_format=torch.contiguous_format) for w in weights]
        self.grad_b = [torch.zeros_like(b, memory_format=torch.contiguous_format) for b in biases]
        self._grads = [g for pair in zip(self.grad_w, self.grad_b) for g in pair]
        if block_points is None:  # measured (pml bench step's shapes): flat optimum from 8 to 32 points at W = 52428
            width = -(-weights[0].shape[1] // 8) * 8
            block_points = 64 if activation == "relu" else max(16, min(64, 131072 // width))
        self.block_points = int(block_points)
        self._ws = [torch.empty(0, dtype=torch.float64) for _ in range(3)]
        self._bufs: dict = {}

    def __call__(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._check(X, y)
        if self._modular is not None:
            return self._modular(X[0], y[0], backward=True)
        with torch.no_grad():
            if self.kernel == "compiled":
                loss = self._compiled(X, y)
            else:
                loss = self._torch(X, y)
        for p, g in zip(self.params, self._grads):
            p.grad = g.view(p.shape)
        return loss

    def mse(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (S,) MSE of each member on (X, y) without gradients (a forward pass through the same workspace)."""
        self._check(X, y)
        if self._modular is not None:
            return self._modular(X[0], y[0], backward=False)
        with torch.no_grad():
            if self.kernel == "compiled":
                return self._compiled(X, y, backward=False)
            return self._torch(X, y, backward=False)

    def _check(self, X: torch.Tensor, y: torch.Tensor) -> None:
        S, d = self.n_members, self.n_inputs
        if X.ndim != 3 or X.shape[0] != S or X.shape[2] != d or y.shape != X.shape[:2]:
            raise ValueError(f"FastStep expects X (S={S}, B, {d}) and y (S, B), got {tuple(X.shape)} and "
                             f"{tuple(y.shape)}")

    def _compiled(self, X: torch.Tensor, y: torch.Tensor, backward: bool = True) -> torch.Tensor:
        if X.stride(2) != 1 or X.stride(1) != X.shape[2]:
            X = X.contiguous()
        if y.stride(1) != 1:
            y = y.contiguous()
        loss = torch.empty(self.n_members, dtype=torch.float64)
        W1, W2 = (w if w.is_contiguous() else w.contiguous() for w in self.weights)
        b1, b2 = (b if b.is_contiguous() else b.contiguous() for b in self.biases)
        act = _ACT_CODE[self.activation]
        if backward:
            compiled_kernel().dense2_step(X, y, W1, b1, W2, b2, self.grad_w[0], self.grad_b[0], self.grad_w[1],
                                          self.grad_b[1], loss, self._ws, act, self.block_points)
        else:
            compiled_kernel().dense2_mse(X, y, W1, b1, W2, b2, loss, self._ws, act, self.block_points)
        return loss

    def _buffers(self, chunk: int, dtype, device) -> dict:
        """The torch kernel's workspace for chunks of up to ``chunk`` points (allocated once, grown when needed)."""
        if self._bufs.get("chunk", 0) < chunk:
            S = self.n_members
            widths = [w.shape[1] for w in self.weights[:-1]]
            kw = dict(dtype=dtype, device=device)
            self._bufs = {"chunk": chunk, "h": [torch.empty(S * chunk * w, **kw) for w in widths],
                          "delta": [torch.empty(S * chunk * max(widths), **kw) for _ in range(2)],
                          "out": torch.empty(S * chunk, **kw), "sq": torch.empty(S * chunk, **kw),
                          "colsum": torch.empty(S * max(widths), **kw)}
        return self._bufs

    def _torch(self, X: torch.Tensor, y: torch.Tensor, backward: bool = True) -> torch.Tensor:
        S, B, _ = X.shape
        weights, biases = self.weights, self.biases
        widths = [w.shape[1] for w in weights[:-1]]
        chunk = self.chunk_points or max(64, min(8192, (1 << 19) // max(widths)))  # GEMMs want K >= ~500
        chunk = min(chunk, B)
        buf = self._buffers(chunk, X.dtype, X.device)
        if backward:
            for g in self._grads:
                g.zero_()
        sse = torch.zeros(S, dtype=X.dtype, device=X.device)
        scale = 2.0 / B
        tanh = self.activation == "tanh"
        last = len(weights) - 1
        for c0 in range(0, B, chunk):
            n = min(chunk, B - c0)
            Xc = X[:, c0:c0 + n]
            inp, hs = Xc, []
            for l in range(last):
                h = buf["h"][l][:S * n * widths[l]].view(S, n, widths[l])
                torch.bmm(inp, weights[l].transpose(1, 2), out=h)
                h.add_(biases[l].unsqueeze(1))  # as BatchedMLP.forward: baddbmm's broadcast bias copy is slower
                if tanh:
                    h.tanh_()
                else:
                    h.relu_()
                hs.append(h)
                inp = h
            r = buf["out"][:S * n].view(S, n, 1)
            torch.bmm(inp, weights[last].transpose(1, 2), out=r)
            r.add_(biases[last].unsqueeze(1))
            r2 = r.view(S, n)
            r2.sub_(y[:, c0:c0 + n])
            sq = buf["sq"][:S * n].view(S, n)
            torch.mul(r2, r2, out=sq)
            sse.add_(sq.sum(dim=1))
            if not backward:
                continue
            r.mul_(scale)  # the gradient of the batch MSE with respect to each output
            self.grad_w[last].baddbmm_(r.transpose(1, 2), hs[-1])
            self.grad_b[last].add_(r.sum(dim=1))
            cur = 0
            delta = buf["delta"][cur][:S * n * widths[-1]].view(S, n, widths[-1])
            torch.mul(r, weights[last], out=delta)  # (S, n, 1) * (S, 1, W): the gradient of the last activations
            for l in range(last - 1, -1, -1):
                if tanh:  # autograd's own derivative ops: grad * (1 - tanh^2), grad * (relu > 0)
                    torch.ops.aten.tanh_backward.grad_input(delta, hs[l], grad_input=delta)
                else:
                    torch.ops.aten.threshold_backward.grad_input(delta, hs[l], 0, grad_input=delta)
                self.grad_w[l].baddbmm_(delta.transpose(1, 2), hs[l - 1] if l > 0 else Xc)
                colsum = buf["colsum"][:S * widths[l]].view(S, widths[l])
                torch.sum(delta, dim=1, out=colsum)
                self.grad_b[l].add_(colsum)
                if l > 0:
                    cur = 1 - cur
                    nxt = buf["delta"][cur][:S * n * widths[l - 1]].view(S, n, widths[l - 1])
                    torch.bmm(delta, weights[l], out=nxt)
                    delta = nxt
        return sse.div_(B)


class _ModularTorch:
    """The torch kernel for a :class:`pml.nn.networks.ModularMLP`: each module's dense forward and backward through
    preallocated chunk buffers, the graph's gradients passed from a module's inputs to the modules that feed them."""

    def __init__(self, model: nn.Module, chunk_points: int | None):
        column = {v: j for j, v in enumerate(model.variables)}
        self.output, self.tanh = model.output, model.activation == "tanh"
        self.modules = []
        for spec in model.layout:
            linears = [m for m in model.modules_by_node[spec.name] if isinstance(m, nn.Linear)]
            refs = [(True, column[i]) if i in column else (False, i) for i in spec.inputs]
            weights, biases = [lin.weight for lin in linears], [lin.bias for lin in linears]
            self.modules.append({"name": spec.name, "refs": refs, "weights": weights, "biases": biases,
                                 "widths": [w.shape[0] for w in weights[:-1]],
                                 "grads": [torch.zeros_like(p) for pair in zip(weights, biases) for p in pair],
                                 "params": [p for pair in zip(weights, biases) for p in pair]})
        widest = max(max(m["widths"]) for m in self.modules)
        self.chunk = chunk_points or max(64, min(8192, (1 << 19) // widest))
        self.allocated = 0

    def _allocate(self, chunk: int, dtype, device) -> None:
        kw = dict(dtype=dtype, device=device)
        for m in self.modules:
            k = len(m["refs"])
            m["inp"], m["out"], m["up"] = (torch.empty(chunk, k, **kw), torch.empty(chunk, **kw),
                                           torch.empty(chunk, **kw))
            m["gin"] = torch.empty(chunk, k, **kw)
            m["h"] = [torch.empty(chunk * w, **kw) for w in m["widths"]]
            m["delta"] = [torch.empty(chunk * max(m["widths"]), **kw) for _ in range(2)]
        self.allocated = chunk

    @torch.no_grad()
    def __call__(self, X: torch.Tensor, y: torch.Tensor, backward: bool) -> torch.Tensor:
        B = X.shape[0]
        chunk = min(self.chunk, B)
        if self.allocated < chunk:
            self._allocate(chunk, X.dtype, X.device)
        if backward:
            for m in self.modules:
                for g in m["grads"]:
                    g.zero_()
        sse = torch.zeros(1, dtype=X.dtype, device=X.device)
        scale = 2.0 / B
        for c0 in range(0, B, chunk):
            n = min(chunk, B - c0)
            Xc = X[c0:c0 + n]
            values = {}
            for m in self.modules:  # node order: a module's inputs are computed before it
                inp = m["inp"][:n]
                for j, (is_var, ref) in enumerate(m["refs"]):
                    inp[:, j].copy_(Xc[:, ref] if is_var else values[ref])
                m["hs"], h_in = [], inp
                for l, width in enumerate(m["widths"]):
                    h = m["h"][l][:n * width].view(n, width)
                    torch.mm(h_in, m["weights"][l].t(), out=h)
                    h.add_(m["biases"][l])
                    if self.tanh:
                        h.tanh_()
                    else:
                        h.relu_()
                    m["hs"].append(h)
                    h_in = h
                out = m["out"][:n].view(n, 1)
                torch.mm(h_in, m["weights"][-1].t(), out=out)
                out.add_(m["biases"][-1])
                values[m["name"]] = out.view(n)
            r = values[self.output]
            r.sub_(y[c0:c0 + n])
            sse.add_(torch.dot(r, r))
            if not backward:
                continue
            upstream = {m["name"]: m["up"][:n].zero_() for m in self.modules}
            torch.mul(r, scale, out=upstream[self.output])  # the gradient of the batch MSE w.r.t. the output
            for m in reversed(self.modules):
                self._backward(m, upstream[m["name"]].view(n, 1), n, upstream)
        if backward:
            for m in self.modules:
                for p, g in zip(m["params"], m["grads"]):
                    p.grad = g
        return sse.div_(B)

    def _backward(self, m: dict, g: torch.Tensor, n: int, upstream: dict) -> None:
        """One module's parameter gradients from the gradient g (n, 1) of its output; its inputs' gradients are added
        to the upstream gradients of the modules that computed them."""
        hs, last = m["hs"], len(m["weights"]) - 1
        grads = m["grads"]
        grads[2 * last].addmm_(g.t(), hs[-1])
        grads[2 * last + 1].add_(g.sum(dim=0))
        cur = 0
        delta = m["delta"][cur][:n * m["widths"][-1]].view(n, m["widths"][-1])
        torch.mul(g, m["weights"][last], out=delta)
        for l in range(last - 1, -1, -1):
            if self.tanh:
                torch.ops.aten.tanh_backward.grad_input(delta, hs[l], grad_input=delta)
            else:
                torch.ops.aten.threshold_backward.grad_input(delta, hs[l], 0, grad_input=delta)
            grads[2 * l].addmm_(delta.t(), hs[l - 1] if l > 0 else m["inp"][:n])
            grads[2 * l + 1].add_(delta.sum(dim=0))
            if l > 0:
                cur = 1 - cur
                nxt = m["delta"][cur][:n * m["widths"][l - 1]].view(n, m["widths"][l - 1])
                torch.mm(delta, m["weights"][l], out=nxt)
                delta = nxt
            elif not all(is_var for is_var, _ in m["refs"]):
                gin = m["gin"][:n]
                torch.mm(delta, m["weights"][0], out=gin)
                for j, (is_var, ref) in enumerate(m["refs"]):
                    if not is_var:
                        upstream[ref].add_(gin[:, j])
