"""pml.nn.fast_step: loss and gradients equal autograd's to rounding, for both kernels; training with it; dispatch."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pml.nn import fast_step, networks, training

TOL = 1e-13  # relative to the largest entry of each gradient tensor


pytestmark = pytest.mark.usefixtures("one_thread")


def _compiled_or_skip():
    if fast_step.compiled_kernel() is None:
        pytest.skip(f"the compiled kernel cannot be built here: {fast_step.kernel_info()['error']}")


def _autograd(model, X, y):
    for p in model.parameters():
        p.grad = None
    loss = ((model(X).reshape(X.shape[0], X.shape[1]) - y) ** 2).mean(dim=1)
    loss.sum().backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _cases(depths, n_cases, seed):
    """Random shapes: widths 1-300, d 1-6, tanh and relu, S 1-4, batches below and above a block / group."""
    rng = np.random.default_rng(seed)
    fixed = [(1, 1, "tanh", 1, 1), (6, 300, "relu", 4, 1500), (3, 257, "tanh", 2, 700), (2, 9, "relu", 3, 3)]
    cases = [(d, w, depths[i % len(depths)], act, S, B) for i, (d, w, act, S, B) in enumerate(fixed)]
    for i in range(n_cases):
        cases.append((int(rng.integers(1, 7)), int(rng.integers(1, 301)), depths[i % len(depths)],
                      ("tanh", "relu")[i % 2], int(rng.integers(1, 5)), int(rng.choice([1, 5, 63, 200, 777, 2100]))))
    return cases


def _check_against_autograd(kernel, d, width, depth, act, S, B, seed=0):
    model = networks.BatchedMLP(d, width, depth, act, seeds=range(seed, seed + S))
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(S, B, d, dtype=torch.float64, generator=gen)
    y = torch.randn(S, B, dtype=torch.float64, generator=gen)
    ref_loss, ref_grads = _autograd(model, X, y)
    step = fast_step.FastStep(model, kernel, chunk_points=97 if kernel == "torch" else None)
    assert step.kernel == kernel
    np.testing.assert_allclose(step.mse(X, y).numpy(), ref_loss.numpy(), rtol=TOL, atol=0)  # forward only
    loss = step(X, y)
    assert not loss.requires_grad
    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=TOL, atol=0)
    for p, ref in zip(model.parameters(), ref_grads):
        assert p.grad.shape == p.shape
        for s in range(S):  # each member's gradient on its own scale
            scale = float(ref[s].abs().max())
            err = float((p.grad[s] - ref[s]).abs().max())
            assert err <= TOL * scale, (kernel, d, width, depth, act, S, B, err, scale)


@pytest.mark.parametrize("case", _cases([2], 10, seed=1))
def test_compiled_kernel_equals_autograd(case):
    _compiled_or_skip()
    _check_against_autograd("compiled", *case)


@pytest.mark.parametrize("case", _cases([2, 3, 4], 10, seed=2))
def test_torch_kernel_equals_autograd(case):
    _check_against_autograd("torch", *case)


def test_torch_kernel_chunks_do_not_matter_beyond_rounding():
    model = networks.BatchedMLP(3, 40, 3, "tanh", seeds=range(2))
    X = torch.randn(2, 500, 3, dtype=torch.float64)
    y = torch.randn(2, 500, dtype=torch.float64)
    whole = fast_step.FastStep(model, "torch", chunk_points=500)
    loss = whole(X, y).clone()
    grads = [p.grad.clone() for p in model.parameters()]
    small = fast_step.FastStep(model, "torch", chunk_points=7)
    np.testing.assert_allclose(small(X, y).numpy(), loss.numpy(), rtol=TOL)
    for p, g in zip(model.parameters(), grads):
        assert float((p.grad - g).abs().max()) <= TOL * float(g.abs().max())


def test_compiled_kernel_is_independent_of_threads_and_block_size():
    _compiled_or_skip()
    model = networks.BatchedMLP(4, 203, 2, "tanh", seeds=range(3))
    X = torch.randn(3, 3000, 4, dtype=torch.float64)  # 3000 points: 8 groups, 24 work items
    y = torch.randn(3, 3000, dtype=torch.float64)
    runs = []
    before = torch.get_num_threads()
    try:
        for threads, block in ((1, None), (2, None), (2, 5), (1, 256)):
            torch.set_num_threads(threads)
            step = fast_step.FastStep(model, "compiled", block_points=block)
            loss = step(X, y).clone()
            runs.append([loss] + [p.grad.clone() for p in model.parameters()])
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_compiled_kernel_reads_strided_batches():
    """_fit passes cyclic slices X[:, k:k+B] (member stride n*d), not contiguous copies."""
    _compiled_or_skip()
    model = networks.BatchedMLP(2, 30, 2, "relu", seeds=range(2))
    X = torch.randn(2, 400, 2, dtype=torch.float64)
    y = torch.randn(2, 400, dtype=torch.float64)
    step = fast_step.FastStep(model, "compiled")
    loss = step(X[:, 100:300], y[:, 100:300]).clone()
    grads = [p.grad.clone() for p in model.parameters()]
    assert torch.equal(step(X[:, 100:300].contiguous(), y[:, 100:300].contiguous()), loss)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_mse_of_a_shared_test_set(kernel):
    """A test set shared by all members arrives broadcast (member stride 0); the forward-only MSE reads it as is."""
    if kernel == "compiled":
        _compiled_or_skip()
    model = networks.BatchedMLP(3, 45, 2, "tanh", seeds=range(3))
    X = torch.randn(700, 3, dtype=torch.float64)
    y = torch.randn(700, dtype=torch.float64)
    with torch.no_grad():
        ref = ((model(X.expand(3, -1, -1)).squeeze(-1) - y) ** 2).mean(dim=1)
    got = fast_step.FastStep(model, kernel).mse(X.expand(3, -1, -1), y.expand(3, -1))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=TOL)


@pytest.mark.parametrize("equation, depth, activation, B", [("I.8.14", 4, "relu", 300), ("I.8.14", 6, "tanh", 90),
                                                              ("II.6.15a", 6, "tanh", 250), ("II.6.15a", 9, "relu", 5)])
def test_modular_networks_equal_autograd(equation, depth, activation, B):
    """Modular networks (torch kernel): modules wired by the graph, gradients passed back through module inputs."""
    from pml import equations

    eq = equations.get(equation)
    model = networks.ModularMLP(eq.graph(), 12, depth, activation, seed=3)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(1, B, eq.dim, dtype=torch.float64, generator=gen)
    y = torch.randn(1, B, dtype=torch.float64, generator=gen)
    for p in model.parameters():
        p.grad = None
    ref_loss = ((model(X[0]).reshape(-1) - y[0]) ** 2).mean()
    ref_loss.backward()
    ref = [p.grad.clone() for p in model.parameters()]
    step = fast_step.FastStep(model, chunk_points=37)  # several chunks
    assert step.kernel == "torch"
    np.testing.assert_allclose(step.mse(X, y).numpy(), [float(ref_loss.detach())], rtol=TOL)
    np.testing.assert_allclose(step(X, y).numpy(), [float(ref_loss.detach())], rtol=TOL)
    for p, g in zip(model.parameters(), ref):
        assert float((p.grad - g).abs().max()) <= TOL * float(g.abs().max())


def test_training_modular_fast_matches_autograd():
    from pml import equations

    eq = equations.get("I.8.14")
    rng = np.random.default_rng(2)
    X, Xt = rng.uniform(1, 2, (300, eq.dim)), rng.uniform(1, 2, (100, eq.dim))
    y, yt = eq(X), eq(Xt)
    results = {}
    for impl in ("autograd", "fast"):
        model = networks.ModularMLP(eq.graph(), 10, 4, "relu", seed=0)
        cfg = training.TrainConfig(n_steps=60, batch_size=128, log_every=10, step_impl=impl)
        results[impl] = training.train(model, X, y, Xt, yt, cfg)
    assert results["fast"].step_kernel == "torch"
    np.testing.assert_allclose(results["fast"].history_train, results["autograd"].history_train, rtol=1e-10)
    np.testing.assert_allclose(results["fast"].history_test, results["autograd"].history_test, rtol=1e-10)


def test_kernel_tanh_is_accurate():
    """The compiled kernel's tanh (glibc's vector tanh where available) against a 120-bit reference."""
    _compiled_or_skip()
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 500), rng.normal(0, 4, 500), [0.0, -0.0, 1e-300, -40.0, 40.0, 19.1]])
    out = torch.tensor(x)
    fast_step.compiled_kernel().tanh_(out)
    with mpmath.workprec(120):
        ref = np.array([float(mpmath.tanh(mpmath.mpf(v))) for v in x])
    ulps = np.abs(out.numpy() - ref) / np.spacing(np.abs(ref))
    assert ulps.max() <= 2.0  # glibc's vector tanh: measured 1 ulp at most


def test_sequential_model_and_views():
    """train()'s make_mlp networks: S = 1 through views of the layers' parameters."""
    model = networks.make_mlp(3, 25, 3, "tanh", seed=4)
    X = torch.randn(1, 300, 3, dtype=torch.float64)
    y = torch.randn(1, 300, dtype=torch.float64)
    for p in model.parameters():
        p.grad = None
    loss = ((model(X[0]).reshape(-1) - y[0]) ** 2).mean()
    loss.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    step = fast_step.FastStep(model, "torch")
    np.testing.assert_allclose(step(X, y).numpy(), [float(loss.detach())], rtol=TOL)
    for p, ref in zip(model.parameters(), ref_grads):
        assert p.grad.shape == p.shape
        assert float((p.grad - ref).abs().max()) <= TOL * float(ref.abs().max())


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_training_fast_matches_autograd(activation):
    rng = np.random.default_rng(0)
    S, n, d = 3, 600, 2
    X = rng.uniform(-1, 1, (S, n, d))
    y = np.cos(2 * X[..., 0]) * X[..., 1]
    Xt = rng.uniform(-1, 1, (S, 300, d))
    yt = np.cos(2 * Xt[..., 0]) * Xt[..., 1]
    results = {}
    for impl in ("autograd", "fast", "torch"):
        model = networks.BatchedMLP(d, 50, 2, activation, seeds=range(S))
        cfg = training.TrainConfig(n_steps=200, batch_size=256, log_every=10, step_impl=impl)
        results[impl] = training.train_batched(model, X, y, Xt, yt, cfg)
    assert {r.step_kernel for r in results["autograd"]} == {"autograd"}
    assert {r.step_kernel for r in results["torch"]} == {"torch"}
    assert {r.step_kernel for r in results["fast"]} <= {"compiled", "torch"}
    for impl in ("fast", "torch"):
        for a, b in zip(results["autograd"], results[impl]):
            np.testing.assert_allclose(b.history_train, a.history_train, rtol=1e-10)
            np.testing.assert_allclose(b.history_test, a.history_test, rtol=1e-10)
            assert b.selected == pytest.approx(a.selected, rel=1e-10)


def test_train_single_model_fast():
    rng = np.random.default_rng(1)
    X, Xt = rng.uniform(-1, 1, (200, 1)), rng.uniform(-1, 1, (100, 1))
    cfg = training.TrainConfig(n_steps=50, batch_size=64, log_every=10)
    a = training.train(networks.make_mlp(1, 20, 2, "relu", seed=0), X, X[:, 0] ** 2, Xt, Xt[:, 0] ** 2, cfg)
    b = training.train(networks.make_mlp(1, 20, 2, "relu", seed=0), X, X[:, 0] ** 2, Xt, Xt[:, 0] ** 2,
                       training.TrainConfig(n_steps=50, batch_size=64, log_every=10, step_impl="fast"))
    assert b.step_kernel in ("compiled", "torch")
    np.testing.assert_allclose(b.history_train, a.history_train, rtol=1e-10)


def test_dispatch():
    dense2 = networks.BatchedMLP(2, 10, 2, "relu", seeds=(0, 1))
    dense3 = networks.BatchedMLP(2, 10, 3, "tanh")
    assert fast_step.choose_kernel(dense2, "autograd") == "autograd"
    assert fast_step.choose_kernel(dense3, "fast") == "torch"  # the compiled kernel has one hidden layer
    expected = "compiled" if fast_step.compiled_kernel() is not None else "torch"
    assert fast_step.choose_kernel(dense2, "fast") == expected
    with pytest.raises(ValueError, match="depth 3"):
        fast_step.choose_kernel(dense3, "compiled")
    with pytest.raises(ValueError, match="unknown step_impl"):
        fast_step.choose_kernel(dense2, "fused")
    with pytest.raises(ValueError, match="step_impl"):
        training.TrainConfig(step_impl="nope")
    # networks neither kernel supports: autograd under "fast", an error when a kernel is named
    from pml import equations

    modular = networks.ModularMLP(equations.get("I.8.14").graph(), 8, 4, "relu")
    assert fast_step.choose_kernel(modular, "fast") == "torch"
    with pytest.raises(ValueError, match="ModularMLP"):
        fast_step.choose_kernel(modular, "compiled")
    sigmoid = torch.nn.Sequential(torch.nn.Linear(2, 4, dtype=torch.float64), torch.nn.Sigmoid(),
                                  torch.nn.Linear(4, 1, dtype=torch.float64))
    assert fast_step.choose_kernel(sigmoid, "fast") == "autograd"
    # off the CPU (a GPU: here the meta device stands in), "fast" keeps autograd and the CPU kernel is refused
    meta = networks.BatchedMLP(2, 10, 2, "relu").to("meta")
    assert fast_step.choose_kernel(meta, "fast") == "autograd"
    with pytest.raises(ValueError, match="CPU"):
        fast_step.choose_kernel(meta, "compiled")
    float32 = networks.BatchedMLP(2, 10, 2, "relu", dtype=torch.float32)
    assert fast_step.choose_kernel(float32, "fast") == "autograd"


def test_kernel_digest_is_current():
    """The C++ source is tied to the module (and so to the keys of tasks that train with it) by its digest."""
    digest = hashlib.sha256(fast_step.SOURCE.read_bytes()).hexdigest()[:16]
    assert fast_step.KERNEL_DIGEST == digest, "update KERNEL_DIGEST in pml/nn/fast_step.py"


def test_sweep_cost_model_follows_dispatch():
    """The network sweeps' cost model assumes the kernel that step_impl="fast" picks (compiled where it builds)."""
    from pml import equations
    from pml.experiments import network_sweep as ns

    if fast_step.compiled_kernel() is None:
        pytest.skip("the compiled kernel cannot be built here: the cost model assumes it")
    for depth in (2, 3, 4):
        for act in ("tanh", "relu"):
            model = networks.BatchedMLP(3, 7, depth, act, seeds=(0, 1))
            assert ns.step_kernel("dense", depth, act) == fast_step.choose_kernel(model, "fast")
    modular = networks.ModularMLP(equations.get("I.8.14").graph(), 8, 4, "relu")
    assert ns.step_kernel("modular", 4, "relu") == fast_step.choose_kernel(modular, "fast") == "torch"
    assert ns.train_config(10, 1e-3, 100, "test_at_min_train").step_impl == "fast"
    args = (10_000, 3000, 4000, 10_000, 30_000)
    assert ns.step_seconds(*args, kernel="compiled", activation="relu") < ns.step_seconds(*args, kernel="autograd")
    with pytest.raises(ValueError, match="unknown kernel"):
        ns.step_seconds(*args, kernel="fast")
