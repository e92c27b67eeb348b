"""Rising learning-rate schedules and reading their failure point."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnlab import models, schedules, train
from bnlab.data import Dataset


def test_doubling_factor():
    f = schedules.doubling(3)
    assert [f(t) for t in range(7)] == [1, 1, 1, 2, 2, 2, 4]
    with pytest.raises(ValueError, match="every"):
        schedules.doubling(0)


def _history(loss, lr, diverged_at=None):
    return train.History(steps=np.array([0]), test_acc=np.array([0.1]), test_loss=np.array([2.3]),
                         train_acc=np.array([]), train_loss=np.asarray(loss, dtype=float),
                         diverged=diverged_at is not None, diverged_at=diverged_at, config={"lr": lr})


def test_failure_point_first_window_above_threshold_or_flagged_divergence():
    f = schedules.doubling(10)
    loss = np.concatenate([np.full(25, 1.0), np.full(10, 5.0)])
    # window 5: the mean of steps 21..25 is (4·1 + 5)/5 = 1.8, of 22..26 (3 + 10)/5 = 2.6 > ln 10
    assert schedules.failure_point(_history(loss, 0.1), f, window=5) == (26, pytest.approx(0.1 * 4))
    # fit flagged a divergence (non-finite or exploded loss) before the window mean rose
    loss2 = np.concatenate([np.full(12, 1.0), [np.inf]])
    assert schedules.failure_point(_history(loss2, 1.0, diverged_at=12), f, window=5) == (12, 2.0)
    step, lr = schedules.failure_point(_history(np.full(30, 1.0), 1.0), f, window=5)
    assert step == 30 and math.isnan(lr)
    with pytest.raises(ValueError, match="no training loss"):
        schedules.failure_point(_history([], 1.0), f)


def test_a_slow_start_is_not_a_failure():
    f = schedules.doubling(10)
    # a plateau at chance (2.31 > ln 10) for 20 steps, then learning (1.0), then a breakdown (5.0) from step 40
    loss = np.concatenate([np.full(20, 2.31), np.full(20, 1.0), np.full(10, 5.0)])
    h = _history(loss, 0.1)
    assert schedules.learning_start(h, window=5) == 21          # mean of steps 17..21 = (3·2.31 + 2)/5 = 1.79 < 2
    assert schedules.failure_point(h, f, window=5) == (41, pytest.approx(0.1 * 16))   # steps 37..41: (3 + 10)/5
    # the old rule (every window above ln 10 counts) calls the plateau a failure at step 4
    assert schedules.failure_point(h, f, window=5, learned_below=None) == (4, pytest.approx(0.1))
    # a run that never learns and never diverges has no failure point; a divergence always counts
    flat = _history(np.full(30, 2.31), 1.0)
    assert schedules.learning_start(flat, window=5) is None
    step, lr = schedules.failure_point(flat, f, window=5)
    assert step == 30 and math.isnan(lr)
    assert schedules.failure_point(_history(np.concatenate([np.full(12, 2.31), [np.inf]]), 1.0, diverged_at=12),
                                   f, window=5) == (12, 2.0)
    with pytest.raises(ValueError, match="learned_below"):
        schedules.failure_point(h, f, learned_below=3.0)
    with pytest.raises(ValueError, match="window"):
        schedules.learning_start(h, window=0)


def _tiny_data(n: int = 120) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Dataset(x[:100], y[:100], x[100:], y[100:], tuple(str(c) for c in range(10)), "tiny", source=None)


def test_fit_applies_the_schedule_step_by_step(monkeypatch):
    ds = _tiny_data()
    h_const = train.fit(lambda: models.mlp(widths=(8,)), ds, steps=6, lr=0.1, batch_size=10, progress=False)
    h_unit = train.fit(lambda: models.mlp(widths=(8,)), ds, steps=6, lr=0.1, batch_size=10, progress=False,
                       lr_schedule=lambda t: 1.0)
    np.testing.assert_array_equal(h_const.train_loss, h_unit.train_loss)   # factor 1 = no schedule

    used = []
    step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    train.fit(lambda: models.mlp(widths=(8,)), ds, steps=4, lr=0.5, batch_size=10, progress=False,
              lr_schedule=lambda t: 2.0 ** t)
    assert used == [0.5, 1.0, 2.0, 4.0]


def test_probes_see_the_learning_rate_of_their_step():
    seen = []
    train.fit(lambda: models.mlp(widths=(8,)), _tiny_data(), steps=4, lr=0.5, batch_size=10, progress=False,
              lr_schedule=lambda t: 2.0 ** t, probes={"lr": lambda ctx: seen.append(ctx.lr)})
    assert seen == [0.5, 1.0, 2.0, 4.0, 8.0]   # before each step, and after the last (the next step's rate)
