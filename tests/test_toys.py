"""The drifting-input toy of notebook 04 (bnlab.toys)."""
from __future__ import annotations

import numpy as np
import pytest

from bnlab.toys import drifting_input_toy, upstream_statistics


def test_standardising_removes_the_drift_exactly():
    base = drifting_input_toy(steps=300, standardize=True, seed=3)
    for amp, scale, moving in ((0.5, 0.15, True), (2.0, 0.5, True), (2.0, 0.5, False)):
        run = drifting_input_toy(steps=300, mean_amplitude=amp, scale_amplitude=scale, moving=moving,
                                 standardize=True, seed=3)
        np.testing.assert_allclose(run.loss, base.loss, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(run.excess, base.excess, rtol=1e-6, atol=1e-12)
        assert np.all(run.optimum_moves == 0)


def test_the_raw_optimum_is_where_the_excess_loss_vanishes():
    run = drifting_input_toy(steps=3, mean_amplitude=1.0, scale_amplitude=0.3, seed=1)
    rng = np.random.default_rng(1)
    w_star = rng.normal(0.0, 1 / np.sqrt(10), 10)
    phases = rng.uniform(0, 2 * np.pi, (2, 10))
    a, c = upstream_statistics(0, 1.0, 0.3, 500.0, phases)
    # at step 0 the layer is at w = 0, b = 0: distance to the optimum (w*/a, b* − Σ w* c / a) and the excess loss
    w_opt, b_opt = w_star / a, 0.5 - np.sum(w_star * c / a)
    np.testing.assert_allclose(run.distance[0], np.linalg.norm(np.append(w_opt, b_opt)), rtol=1e-12)
    np.testing.assert_allclose(run.excess[0], 0.5 * (np.sum(w_star ** 2) + 0.5 ** 2), rtol=1e-12)
    # the optimum's first move, from the statistics of step 0 to those of step 1
    a1, c1 = upstream_statistics(1, 1.0, 0.3, 500.0, phases)
    moved = np.append(w_star / a1, 0.5 - np.sum(w_star * c1 / a1)) - np.append(w_opt, b_opt)
    np.testing.assert_allclose(run.optimum_moves[0], np.linalg.norm(moved), rtol=1e-10)


def test_the_excess_loss_is_the_expected_loss_above_the_floor():
    run = drifting_input_toy(steps=50, mean_amplitude=1.0, scale_amplitude=0.3, noise=0.2, seed=2)
    # the training loss on a batch of 60 scatters around floor + excess; on average over steps it agrees
    assert abs(np.mean(run.loss - 0.5 * 0.2 ** 2 - run.excess)) < 0.2 * np.mean(run.excess) + 5e-3


def test_drift_slows_the_raw_layer_and_a_static_shift_does_not_stop_it():
    none = drifting_input_toy(steps=2_000, seed=0)
    small = drifting_input_toy(steps=2_000, mean_amplitude=0.5, scale_amplitude=0.15, seed=0)
    large = drifting_input_toy(steps=2_000, mean_amplitude=2.0, scale_amplitude=0.5, seed=0)
    static = drifting_input_toy(steps=2_000, mean_amplitude=2.0, scale_amplitude=0.5, moving=False, seed=0)
    late = slice(1_000, None)
    assert none.excess[late].mean() < 1e-3 < small.excess[late].mean() < large.excess[late].mean()
    assert static.excess[late].mean() < 0.2 * large.excess[late].mean()
    assert np.all(static.optimum_moves == 0) and np.all(large.optimum_moves > 0)


def test_same_seed_same_numbers():
    a = drifting_input_toy(steps=100, mean_amplitude=1.0, seed=7)
    b = drifting_input_toy(steps=100, mean_amplitude=1.0, seed=7)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert a.config["seed"] == 7 and a.loss.shape == (100,)


@pytest.mark.parametrize("kwargs, match", [(dict(steps=0), "steps"), (dict(lr=0.0), "lr"), (dict(dim=0), "dim"),
                                           (dict(period=0.0), "period"), (dict(batch_size=1), "batch_size"),
                                           (dict(mean_amplitude=-1.0), "non-negative")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        drifting_input_toy(**kwargs)
