"""pml.nn.hessian: exact full Hessian of the MSE, its spectrum and gradient projections (paper §4.1, Fig. 7)."""


import numpy as np
import pytest
import torch
from nets import tiny_mlp

from pml.nn import hessian
from pml.nn.flat import FlatModel


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(60, 2))
    y = np.sin(2 * X[:, 0]) * X[:, 1]
    return tiny_mlp([2, 4, 3, 1], seed=1), X, y


def test_hessian_matches_finite_differences_of_gradient(problem):
    model, X, y = problem
    flat = FlatModel(model, X, y)
    theta = flat.theta()
    H = hessian.hessian_matrix(flat, theta)
    eps = 1e-6
    cols = []
    for i in range(flat.n_params):
        e = torch.zeros(flat.n_params, dtype=torch.float64)
        e[i] = eps
        cols.append((flat.loss_and_grad(theta + e)[1] - flat.loss_and_grad(theta - e)[1]) / (2 * eps))
    H_fd = torch.stack(cols, dim=1)
    assert H.shape == (flat.n_params, flat.n_params) == (31, 31)
    assert torch.max(torch.abs(H - H_fd)) < 1e-7 * torch.max(torch.abs(H))


def test_hessian_symmetric_and_matches_autograd_functional(problem):
    model, X, y = problem
    flat = FlatModel(model, X, y)
    theta = flat.theta()
    H_raw = hessian.hessian_matrix(flat, theta, symmetrize=False)
    scale = torch.max(torch.abs(H_raw))
    assert torch.max(torch.abs(H_raw - H_raw.T)) < 1e-14 * scale
    H_ref = torch.autograd.functional.hessian(lambda t: flat.loss(t), theta)
    assert torch.max(torch.abs(H_raw - H_ref)) < 1e-14 * scale
    H = hessian.hessian(model, X, y)
    assert torch.equal(H, H.T)


def test_chunking_over_data_and_directions_gives_same_hessian(problem):
    model, X, y = problem
    flat = FlatModel(model, X, y)
    H = hessian.hessian_matrix(flat)
    H_chunked = hessian.hessian_matrix(flat, batch_size=7, chunk_size=5)
    assert torch.max(torch.abs(H - H_chunked)) < 1e-14 * torch.max(torch.abs(H))
    with pytest.raises(ValueError, match="chunk_size"):
        hessian.hessian_matrix(flat, chunk_size=0)


def test_spectrum_projections_sum_to_gradient_norm(problem):
    model, X, y = problem
    spec = hessian.spectrum(model, X, y)
    N = spec.n_params
    assert np.all(np.diff(spec.eigenvalues) >= 0)  # ascending
    E = spec.eigenvectors
    assert np.allclose(E.T @ E, np.eye(N), atol=1e-12)
    H = hessian.hessian(model, X, y).numpy()
    assert np.allclose(H @ E, E * spec.eigenvalues, atol=1e-12 * np.abs(spec.eigenvalues).max())
    flat = FlatModel(model, X, y)
    loss, g = flat.loss_and_grad(flat.theta())
    assert np.array_equal(spec.gradient, g.numpy())
    assert spec.loss == pytest.approx(float(loss), rel=1e-15)
    g2 = float(np.sum(spec.gradient**2))
    assert np.sum(spec.grad_projections**2) == pytest.approx(g2, rel=1e-12)
    evals_desc, proj_desc = spec.descending()
    assert evals_desc[0] == spec.eigenvalues.max() and proj_desc[0] == spec.grad_projections[-1]


def test_first_layer_only_reproduces_authors_projection(problem):
    model, X, y = problem
    full = hessian.spectrum(model, X, y)
    bug = hessian.spectrum(model, X, y, first_layer_only=True)
    k = model[0].weight.numel()  # first parameter tensor: the first layer's weights
    expected = np.abs(full.eigenvectors[:k, :].T @ full.gradient[:k])
    assert np.allclose(bug.grad_projections, expected, rtol=1e-12, atol=1e-300)
    assert np.array_equal(bug.eigenvalues, full.eigenvalues)
    assert not np.allclose(bug.grad_projections, full.grad_projections)


def test_summary_helpers(problem):
    model, X, y = problem
    spec = hessian.spectrum(model, X, y)
    N = spec.n_params
    assert hessian.gradient_fraction_top_k(spec, 0) == 0.0
    assert hessian.gradient_fraction_top_k(spec, N) == pytest.approx(1.0, rel=1e-14)
    fr = [hessian.gradient_fraction_top_k(spec, k) for k in range(N + 1)]
    assert np.all(np.diff(fr) >= -1e-15)
    top = np.argmax(spec.eigenvalues)
    assert fr[1] == pytest.approx(spec.grad_projections[top] ** 2 / np.sum(spec.grad_projections**2))
    assert 0.0 <= hessian.gradient_fraction_top_k(spec, 3, by="abs") <= 1.0
    counts = hessian.eigenvalue_counts(spec)
    assert counts["nonnegative"] + counts["negative"] == N
    assert counts["negative"] == int(np.sum(spec.eigenvalues < 0))
    assert hessian.top_eigenvalue(spec) == spec.eigenvalues.max()
    assert "Spectrum(n_params=31" in repr(spec)
    with pytest.raises(ValueError):
        hessian.gradient_fraction_top_k(spec, N + 1)
    with pytest.raises(ValueError, match="by"):
        hessian.gradient_fraction_top_k(spec, 1, by="size")


def test_hessian_of_linear_least_squares_is_exact():
    # For a linear model the MSE Hessian is (2/n) [X 1]^T [X 1] exactly.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    model = tiny_mlp([3, 1], seed=0)
    H = hessian.hessian(model, X, rng.normal(size=40)).numpy()
    A = np.hstack([X, np.ones((40, 1))])
    assert np.allclose(H, 2 * A.T @ A / 40, rtol=1e-13, atol=1e-14)


def test_rejects_float32_and_leaves_global_rng_alone(problem):
    model, X, y = problem
    state = torch.random.get_rng_state()
    hessian.spectrum(model, X, y)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.get_default_dtype() == torch.float32
    with pytest.raises(TypeError, match="float64"):
        hessian.spectrum(tiny_mlp([2, 3, 1], seed=0).float(), X, y)
