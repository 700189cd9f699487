"""Statistics over replications (`stats`): Holm, the bootstrap, the paired permutation test
over photographs."""

import numpy as np
import pytest

from kernelfusion import stats


def test_holm_adjustment_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_bootstrap_difference_within_a_seed():
    rng = np.random.default_rng(0)
    truth = np.repeat([True, False], 500)
    good = np.where(truth, 1.0, -1.0) + rng.normal(0, 0.8, 1000)
    poor = np.where(truth, 1.0, -1.0) + rng.normal(0, 3.0, 1000)
    point, low, high = stats.bootstrap_difference(good, poor, truth, "f1", resamples=200)
    assert 0 < low < point < high
    same = stats.bootstrap_difference(good, good, truth, "roc auc", resamples=50)
    assert same == (0.0, 0.0, 0.0)


def test_photograph_permutation_test_is_the_exact_one_by_hand():
    """Eight photographs, two repetitions: scipy enumerates all 2^8 swaps of the two models'
    scores photograph by photograph; the p-value is the share of swaps whose mean F1
    difference is at least as far from zero as the observed one (two-sided)."""
    import itertools

    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    a = np.array([[1, 1, -1, -1, -1, 1, -1, 1], [1, 1, 1, -1, -1, -1, -1, -1]], dtype=float)
    b = np.array([[-1, 1, -1, 1, -1, 1, 1, -1], [-1, -1, 1, 1, -1, 1, -1, 1]], dtype=float)
    table = stats.photograph_differences(
        {"m": a, "r": b}, truth, "m", "probe F1", decisive=("r",), resamples=9999
    )

    def f1_mean(x):
        return stats.photograph_metric(x, truth, "f1")

    observed = f1_mean(a) - f1_mean(b)
    extreme = 0
    for flips in itertools.product([False, True], repeat=8):
        swap = np.array(flips)
        x, y = np.where(swap, b, a), np.where(swap, a, b)
        extreme += abs(f1_mean(x) - f1_mean(y)) >= abs(observed) - 1e-12
    assert table.loc["r", "difference"] == pytest.approx(observed)
    assert table.loc["r", "p"] == pytest.approx(extreme / 256)
    assert table.loc["r", "seeds"] == 8  # the photographs are the unit
    # the same scores for both models: nothing to test
    same = stats.photograph_differences({"m": a, "r": a}, truth, "m", "probe F1", decisive=("r",))
    assert same.loc["r", "p"] == 1.0 and same.loc["r", "verdict"] == "not distinguishable"
