"""The User's Guide rules (paper Fig. 10): choices, coverage, one source of truth with fitting and the figure."""

import itertools

import pytest

from pml import fitting
from pml.fitting import guide


@pytest.mark.parametrize(
    "d, n, smooth, key, first",
    [
        (1, 200, True, "1d-enough", "poly"),
        (1, 20, True, "1d-little", "readout"),
        (1, 10, True, "1d-few", "readout"),
        (2, 50, True, "2d-few", "readout"),
        (2, 5000, True, "2d-enough", "poly"),
        (2, 100, True, "2d-little", "readout"),
        (4, 1000, True, "high-d", "poly"),
        (1, 100, False, "rough-1d", "spline"),
        (3, 500, False, "rough-simplex", "simplex"),
        (8, 500, False, "rough-high-d", "adam-relu"),
    ],
)
def test_choose_at_several_d_and_n(d, n, smooth, key, first):
    choice = guide.choose(d, n, smooth=smooth)
    assert choice.rule.key == key and choice.method == first
    assert choice.reason == choice.rule.reason and choice.expected_rel_rmse == choice.rule.promise


def test_too_few_rows_names_the_minimum():
    with pytest.raises(ValueError, match="at least 100 rows"):
        guide.choose(3, 50)
    assert guide.min_rows(1) == 5 and guide.min_rows(2) == 10


@pytest.mark.parametrize("bad", [(0, 10), (1.5, 10), (2, -1), (True, 10)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        guide.choose(*bad)


def test_rules_cover_the_plane_without_overlap():
    ns = [1, 3, 4, 5, 9, 10, 19, 20, 29, 30, 49, 50, 99, 100, 1999, 2000, 10**5, 10**7]
    for d, n, smooth in itertools.product(range(1, 12), ns, (True, False)):
        matches = [r.key for r in guide.RULES if r.matches(d, n, smooth)]
        assert len(matches) <= 1, (d, n, smooth, matches)
        if n >= guide.min_rows(d, smooth):
            assert matches, (d, n, smooth)


def test_every_rule_names_fitting_methods_and_promises_only_for_smooth_low_d():
    for r in guide.RULES:
        assert r.methods and set(r.methods) <= set(fitting.METHODS), r.key
        assert r.reason and r.label
        if r.promise is not None:
            assert r.smooth and r.d_max is not None and r.d_max <= 2 and 0 < r.promise < 1


def test_chart_is_the_rules():
    for smooth in (True, False):
        regions = guide.chart(smooth=smooth, d_max=8, n_max=1e6)
        rules = [r for r in guide.RULES if r.smooth == smooth]
        assert [g["key"] for g in regions] == [r.key for r in rules]
        for g, r in zip(regions, rules):
            assert (g["d_lo"], g["n_lo"], g["methods"], g["promise"]) == (r.d_min, r.n_min, r.methods, r.promise)
            assert g["d_hi"] == (r.d_max if r.d_max is not None else 8)
            assert g["n_hi"] == (r.n_max if r.n_max is not None else 1e6)


def test_rules_table_lists_every_rule():
    table = guide.rules_table()
    for r in guide.RULES:
        assert r.key in table


def test_promise_met():
    assert guide.promise_met(1e-13, 1e-12) is True
    assert guide.promise_met(1e-11, 1e-12) is False
    assert guide.promise_met(1e-11, None) is None
    assert guide.promise_met(float("nan"), 1e-12) is False


def test_plot_guide_draws_every_rule():
    from pml.plotting import users_guide

    fig = users_guide.plot_guide(points=[{"d": 2, "n": 3000, "label": "II.3.24"}])
    axes = fig.get_axes()
    assert len(axes) == 2
    from pml import plotting

    texts = plotting.figure_texts(fig)
    for r in guide.RULES:
        assert any(" ".join(r.label.split()) in t for t in texts), r.key
    assert any("II.3.24" in t for t in texts)


@pytest.mark.parametrize("eq_id, n", [("cos2x", 20), ("cos2x", 100), ("exp_x", 100), ("exp_xy", 100)])
def test_promises_hold_on_the_calibration_targets_at_the_thresholds(eq_id, n):
    """The targets of chapters 1-4 the promises were calibrated on, at a rule's smallest n (2 of the 5 seeds)."""
    import numpy as np

    from pml import equations

    e = equations.get(eq_id)
    box = np.array(e.ranges)
    for seed in range(2):
        X = np.random.default_rng([seed, 99]).uniform(box[:, 0], box[:, 1], (n, len(box)))
        report = fitting.fit(X, e.func(X), seed=seed).report
        assert report.promise is not None and report.promise_met, (eq_id, n, seed, report.val_rel_rmse)
