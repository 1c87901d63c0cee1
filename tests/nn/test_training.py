import dataclasses

import numpy as np
import pytest
import torch

from pml import data, equations
from pml.nn import networks, training

pytestmark = pytest.mark.usefixtures("one_thread")


def _target(X):
    return np.cos(2 * X[:, 0]) * X[:, 1]


def _split(seed, n=120, n_test=300):
    return data.train_test_split(_target, [(-1, 1), (1, 3)], n, n_test, seed=seed)


CFG = training.TrainConfig(n_steps=150, batch_size=50, log_every=25)


def test_config_defaults_are_paper_values():
    cfg = training.TrainConfig()
    assert (cfg.n_steps, cfg.lr, cfg.batch_size, cfg.normalize_inputs, cfg.selection) == (
        20_000, 1e-3, 10_000, True, "test_at_min_train")


@pytest.mark.parametrize("bad", [dict(selection="best"), dict(n_steps=0), dict(lr=-1.0), dict(batch_size=2.5),
                                 dict(selection="min_test", test_every_step=False)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        training.TrainConfig(**bad)


def test_config_error_lists_selections():
    with pytest.raises(ValueError, match="test_at_min_train"):
        training.TrainConfig(selection="best")


def test_training_reduces_loss():
    X, y, Xt, yt = _split(0)
    model = networks.make_mlp(2, 16, 3, seed=0)
    res = training.train(model, X, y, Xt, yt, training.TrainConfig(n_steps=300, batch_size=10_000, log_every=50))
    assert res.final_test < 0.5 * res.initial_test
    assert res.min_train <= res.history_train[0]
    assert res.history_step.tolist() == [0, 50, 100, 150, 200, 250, 299]
    assert res.selected == res.test_at_min_train
    assert res.n_steps_done == 300 and not res.interrupted
    # standardisation: training mean and unbiased std
    np.testing.assert_allclose(res.input_mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(res.input_std, X.std(axis=0, ddof=1), rtol=1e-14)
    # predict() applies the same transform: its test RMSE is the final test value
    pred = training.predict(model, Xt, res)
    assert np.sqrt(np.mean((pred - yt) ** 2)) == pytest.approx(res.final_test, rel=1e-12)


def test_train_leaves_global_rng_alone():
    X, y, Xt, yt = _split(1)
    state = torch.random.get_rng_state()
    training.train(networks.make_mlp(2, 4, 2), X, y, Xt, yt, dataclasses.replace(CFG, n_steps=5))
    assert torch.equal(state, torch.random.get_rng_state())


def test_cyclic_contiguous_batches():
    """With B < |D| the batch at step s is indices sB..sB+B-1 mod |D| (spec §1): check against a manual loop."""
    X, y, Xt, yt = _split(2, n=7, n_test=5)
    cfg = training.TrainConfig(n_steps=6, batch_size=3, log_every=1, normalize_inputs=False)
    model = networks.make_mlp(2, 3, 2, seed=1)
    ref = networks.make_mlp(2, 3, 2, seed=1)
    res = training.train(model, X, y, Xt, yt, cfg)
    opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    Xt_, yt_ = torch.from_numpy(X), torch.from_numpy(y)
    train_l = []
    for s in range(6):
        idx = [(3 * s + j) % 7 for j in range(3)]
        opt.zero_grad()
        loss = ((ref(Xt_[idx]).squeeze(-1) - yt_[idx]) ** 2).mean()
        loss.backward()
        opt.step()
        train_l.append(float(loss.detach().sqrt()))
    np.testing.assert_allclose(res.history_train, train_l, rtol=1e-12)
    assert all(torch.allclose(p, q, rtol=1e-12, atol=0) for p, q in zip(model.parameters(), ref.parameters()))


def test_select_on_hand_made_history():
    train = [5.0, 3.0, 1.0, 2.0, 1.0, 4.0]
    test = [9.0, 8.0, 7.0, 0.5, 6.0, 0.9]
    # first minimum of the pre-update train loss is step 2; its post-update test value is 7
    assert training.select(train, test, "test_at_min_train") == 7.0
    assert training.select(train, test, "min_test") == 0.5
    assert training.select(train, test, "final_test") == 0.9
    # logged before updates 0, 2, 4 = initial, after update 1, after update 3
    assert training.select(train, test, "min_logged_test", initial_test=10.0, log_every=2) == 0.5
    assert training.select(train, test, "min_logged_test", initial_test=0.1, log_every=2) == 0.1
    assert training.select(train, test, "min_logged_test", initial_test=10.0, log_every=4) == 0.5  # initial, after 3
    with pytest.raises(ValueError, match="valid"):
        training.select(train, test, "nope")


def test_lazy_test_evaluation_is_exact():
    X, y, Xt, yt = _split(3)
    full = training.train(networks.make_mlp(2, 8, 3, seed=2), X, y, Xt, yt, CFG)
    lazy = training.train(networks.make_mlp(2, 8, 3, seed=2), X, y, Xt, yt,
                          dataclasses.replace(CFG, test_every_step=False))
    for name in ("test_at_min_train", "min_logged_test", "final_test", "min_train", "step_at_min_train"):
        assert getattr(lazy, name) == getattr(full, name), name
    assert np.isnan(lazy.min_test) and not np.isnan(full.min_test)


def test_selection_field_picks_reported_value():
    X, y, Xt, yt = _split(4)
    cfg = dataclasses.replace(CFG, selection="min_test")
    res = training.train(networks.make_mlp(2, 8, 2, seed=0), X, y, Xt, yt, cfg)
    assert res.selected == res.min_test <= res.test_at_min_train


def test_eval_chunks_match():
    X, y, Xt, yt = _split(5)
    a = training.train(networks.make_mlp(2, 8, 2, seed=0), X, y, Xt, yt, dataclasses.replace(CFG, n_steps=20))
    b = training.train(networks.make_mlp(2, 8, 2, seed=0), X, y, Xt, yt,
                       dataclasses.replace(CFG, n_steps=20, eval_chunk_size=64))
    np.testing.assert_allclose(a.history_test, b.history_test, rtol=1e-12)


def test_modular_network_trains():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 5, size=(100, 4))
    Xt = rng.uniform(1.4, 4.6, size=(100, 4))
    f = lambda Z: np.sqrt((Z[:, 1] - Z[:, 0]) ** 2 + (Z[:, 3] - Z[:, 2]) ** 2)
    model = networks.ModularMLP(equations.get("I.8.14").graph(), 8, 4, seed=0)
    res = training.train(model, X, f(X), Xt, f(Xt), dataclasses.replace(CFG, n_steps=100, batch_size=30_000))
    assert res.final_test < res.initial_test


def test_batched_equals_sequential():
    seeds = [0, 1, 2]
    splits = [_split(10 + s) for s in seeds]
    X, y, Xt, yt = (np.stack([sp[i] for sp in splits]) for i in range(4))
    batched = networks.BatchedMLP(2, 8, 3, seeds=seeds)
    results = training.train_batched(batched, X, y, Xt, yt, CFG)
    for s, seed in enumerate(seeds):
        model = networks.make_mlp(2, 8, 3, seed=seed)
        ref = training.train(model, X[s], y[s], Xt[s], yt[s], CFG)
        got = results[s]
        assert got.step_at_min_train == ref.step_at_min_train
        for name in ("test_at_min_train", "min_train", "min_test", "final_test", "initial_test"):
            assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-9), name
        np.testing.assert_allclose(got.history_test, ref.history_test, rtol=1e-9)
        for p, q in zip(batched.member(s).parameters(), model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_batched_lazy_test_evaluation_is_exact():
    """test_every_step=False keeps each member's best parameters and evaluates them once at the end: the same
    numbers as evaluating at every step, and the model ends with its final (not its best) parameters."""
    seeds = [0, 1, 2]
    splits = [_split(30 + s) for s in seeds]
    X, y, Xt, yt = (np.stack([sp[i] for sp in splits]) for i in range(4))
    cfg = dataclasses.replace(CFG, lr=3e-2, n_steps=120)  # a large step: the members' minima fall at different steps
    full_model, lazy_model = networks.BatchedMLP(2, 8, 3, seeds=seeds), networks.BatchedMLP(2, 8, 3, seeds=seeds)
    full = training.train_batched(full_model, X, y, Xt, yt, cfg)
    lazy = training.train_batched(lazy_model, X, y, Xt, yt, dataclasses.replace(cfg, test_every_step=False))
    assert len({r.step_at_min_train for r in full}) > 1
    for a, b in zip(full, lazy):
        for name in ("test_at_min_train", "min_logged_test", "final_test", "min_train", "step_at_min_train"):
            assert getattr(b, name) == getattr(a, name), name
    for p, q in zip(full_model.parameters(), lazy_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_batched_shared_test_set_and_shape_errors():
    splits = [_split(20 + s) for s in range(2)]
    X, y = np.stack([sp[0] for sp in splits]), np.stack([sp[1] for sp in splits])
    Xt, yt = splits[0][2], splits[0][3]
    cfg = dataclasses.replace(CFG, n_steps=5)
    res = training.train_batched(networks.BatchedMLP(2, 4, 2, seeds=[0, 1]), X, y, Xt, yt, cfg)
    assert len(res) == 2
    with pytest.raises(ValueError, match="members"):
        training.train_batched(networks.BatchedMLP(2, 4, 2, seeds=[0, 1, 2]), X, y, Xt, yt, cfg)


def test_keyboard_interrupt_keeps_partial_history():
    X, y, Xt, yt = _split(6)
    model = networks.make_mlp(2, 4, 2, seed=0)
    calls = {"n": 0}
    forward = model.forward

    def interrupting(x):
        calls["n"] += 1
        if calls["n"] == 12:  # 1 initial test eval, then (train + test) per step: step 5's train forward
            raise KeyboardInterrupt
        return forward(x)

    model.forward = interrupting
    with pytest.raises(training.TrainingInterrupted) as info:
        training.train(model, X, y, Xt, yt, dataclasses.replace(CFG, log_every=2))
    partial = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert partial.interrupted and partial.n_steps_done == 5
    assert partial.history_step.tolist() == [0, 2, 4]
    assert np.isfinite(partial.test_at_min_train)


def test_progress_bar_runs():
    X, y, Xt, yt = _split(7)
    res = training.train(networks.make_mlp(2, 4, 2), X, y, Xt, yt, dataclasses.replace(CFG, n_steps=10), progress=True)
    assert res.n_steps_done == 10


def test_benchmark_smoke():
    from pml.benchmarks import batched as bench

    result = bench.run(seed_counts=(2,), width=4, n_train=16, n_test=20, n_steps=5, thread_settings=(1,))
    assert [r["test_every_step"] for r in result["runs"]] == [False, True]
    for row in result["runs"]:
        assert row["max_abs_diff"]["test_at_min_train"] < 1e-12 and row["same_argmin_step"]
    assert "best+logged" in bench.format(result)
