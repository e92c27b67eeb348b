"""bnlab.train.fit: determinism, learning on real data, divergence, probes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlab import models, train


def _plain():
    return models.mlp(widths=(32, 32), init_std=0.1)


def test_same_seed_identical_history(small_fmnist):
    kw = dict(steps=150, lr=0.5, eval_every=50, progress=False)
    a = train.fit(lambda: models.mlp(widths=(32, 32), norm="bn", init_std=0.1), small_fmnist, seed=3, **kw)
    b = train.fit(lambda: models.mlp(widths=(32, 32), norm="bn", init_std=0.1), small_fmnist, seed=3, **kw)
    c = train.fit(lambda: models.mlp(widths=(32, 32), norm="bn", init_std=0.1), small_fmnist, seed=4, **kw)
    assert np.array_equal(a.train_loss, b.train_loss) and np.array_equal(a.test_acc, b.test_acc)
    assert not np.array_equal(a.train_loss, c.train_loss)


def test_accuracy_improves_on_real_data(small_fmnist):
    hist = train.fit(lambda: models.mlp(widths=(64,), activation="relu"), small_fmnist, steps=300, lr=0.1,
                     eval_every=100, progress=False)
    assert list(hist.steps) == [0, 100, 200, 300]
    assert hist.test_acc[0] < 0.3 and hist.final_accuracy > 0.7
    assert len(hist.train_loss) == 300 and hist.train_loss[-50:].mean() < hist.train_loss[:10].mean()
    assert not hist.diverged


def test_divergence_stops_and_is_flagged(small_fmnist):
    hist = train.fit(_plain, small_fmnist, steps=2000, lr=1e4, eval_every=500, progress=False)
    assert hist.diverged and hist.diverged_at is not None and hist.diverged_at < 2000
    assert len(hist.train_loss) == hist.diverged_at + 1
    assert not hist.train_loss[-1] <= 1e4 and (hist.train_loss[:-1] <= 1e4).all()
    assert "diverged at step" in repr(hist)


def test_nan_loss_is_divergence(small_fmnist):
    def nan_after_10(logits, y):
        loss = torch.nn.functional.cross_entropy(logits, y)
        nan_after_10.calls += 1
        return loss * float("nan") if nan_after_10.calls > 10 else loss
    nan_after_10.calls = 0
    hist = train.fit(_plain, small_fmnist, steps=100, lr=0.1, loss_fn=nan_after_10, progress=False)
    assert hist.diverged and hist.diverged_at == 10 and np.isnan(hist.train_loss[-1])


def test_sweep_keeps_going_after_a_divergence(small_fmnist):
    hists = [train.fit(_plain, small_fmnist, steps=100, lr=lr, eval_every=50, progress=False)
             for lr in (1e4, 0.1)]
    assert hists[0].diverged and not hists[1].diverged


def test_probes_run_on_schedule_and_see_the_batch(small_fmnist):
    seen = []

    def probe(ctx: train.ProbeContext) -> float:
        assert ctx.x.shape == (30, 1, 28, 28) and ctx.y.shape == (30,) and ctx.lr == 0.1
        assert ctx.model.training
        seen.append(ctx.step)
        return float(ctx.model.fc1.weight.detach().norm())

    slow = lambda ctx: ctx.step  # noqa: E731
    slow.every = 40
    hist = train.fit(_plain, small_fmnist, steps=100, lr=0.1, batch_size=30, eval_every=50,
                     probes={"w": probe, "slow": slow}, probe_every=25, progress=False)
    assert hist.probe_steps["w"] == [0, 25, 50, 75, 100]
    assert hist.probe_steps["slow"] == [0, 40, 80, 100]
    steps, values = hist.probe("w")
    assert values.shape == (5,) and values[0] != values[-1]


def test_eval_train_and_accuracy_at(small_fmnist):
    hist = train.fit(_plain, small_fmnist, steps=100, lr=0.5, eval_every=50, eval_train=True, progress=False)
    assert hist.train_acc.shape == hist.test_acc.shape == (3,)
    assert hist.accuracy_at(99) == hist.test_acc[1]


def test_a_longer_run_starts_as_the_shorter_one(small_fmnist):
    # notebook 08 reads the 3,000-step accuracy off its 10,000-step runs: the first k steps of a run
    # must not depend on how many steps follow or how often it is evaluated
    net = lambda: models.mlp(widths=(32, 32), norm="bn", activation="relu")
    short = train.fit(net, small_fmnist, steps=120, lr=0.5, seed=2, eval_every=120, progress=False)
    long = train.fit(net, small_fmnist, steps=300, lr=0.5, seed=2, eval_every=40, progress=False)
    assert np.array_equal(long.train_loss[:120], short.train_loss)
    assert long.accuracy_at(120) == short.final_accuracy
    assert long.final_accuracy != short.final_accuracy


def test_tuple_data_and_batch_of_one_with_bn_is_refused(small_fmnist):
    d = small_fmnist
    tup = (d.x_train[:600], d.y_train[:600], d.x_test[:100], d.y_test[:100])
    train.fit(_plain, tup, steps=5, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="batch_size=1 with batch normalization"):
        train.fit(lambda: models.mlp(norm="bn"), tup, steps=5, lr=0.1, batch_size=1, progress=False)
    # integer labels of any width are class indices (NumPy's default int is int32 on Windows)
    hist = train.fit(_plain, (d.x_train[:600], d.y_train[:600].int(), d.x_test[:100], d.y_test[:100].int()),
                     steps=5, lr=0.1, progress=False)
    assert len(hist.train_loss) == 5
    with pytest.raises(TypeError, match=r"y_train must hold integer class indices.*y_train.long\(\)"):
        train.fit(_plain, (d.x_train[:600], d.y_train[:600].float(), d.x_test[:100], d.y_test[:100]),
                  steps=5, lr=0.1, progress=False)


def test_batch_indices_cover_each_epoch_once():
    g = torch.Generator().manual_seed(0)
    batches = list(train.batch_indices(100, 10, 25, g))
    assert len(batches) == 25
    first_epoch = torch.cat(batches[:10])
    assert sorted(first_epoch.tolist()) == list(range(100))


def test_steps_to_first_step_reaching_a_target():
    steps = np.array([0, 100, 200, 300, 400])
    acc = np.array([0.1, 0.9, 0.5, 0.8, 0.85])
    assert train.steps_to(steps, acc, 0.8) == 100.0
    assert train.steps_to(steps, acc, 0.95) == float("inf")
    # trailing mean over 2 values: 0.5, 0.7, 0.65, 0.825 -> first >= 0.8 at step 400
    assert train.steps_to(steps, acc, 0.8, window=2) == 400.0
    assert train.steps_to(steps, acc, 0.6, window=5) == 400.0          # mean of all five: 0.63
    assert train.steps_to(steps, acc, 0.7, window=5) == float("inf")
    assert train.steps_to(steps[:1], acc[:1], 0.0, window=2) == float("inf")
    with pytest.raises(ValueError, match="same length"):
        train.steps_to(steps, acc[:3], 0.5)
    with pytest.raises(ValueError, match="window"):
        train.steps_to(steps, acc, 0.5, window=0)


def test_weight_decay_params_decays_only_the_chosen_parameters(small_fmnist):
    # one SGD step from the same init and batch: the gradients agree, so the chosen tensors differ
    # from the undecayed run by exactly −lr·λ·W₀ and every other tensor is bit-identical
    lr, wd = 0.1, 0.01
    init = models.mlp(widths=(16, 16), norm="bn")
    w0 = {n: p.detach().clone() for n, p in init.named_parameters()}
    runs = {}
    for label, kw in (("none", dict(weight_decay=0.0)),
                      ("fc", dict(weight_decay=wd, weight_decay_params=["fc1.", "fc2.weight"]))):
        model = models.mlp(widths=(16, 16), norm="bn")
        model.load_state_dict(init.state_dict())
        h = train.fit(model, small_fmnist, steps=1, lr=lr, eval_every=1, progress=False, **kw)
        runs[label] = dict(model.named_parameters())
    assert h.config["weight_decay_params"] == ["fc1.", "fc2.weight"]
    for name, p in runs["fc"].items():
        if name in ("fc1.weight", "fc2.weight"):
            torch.testing.assert_close(p - runs["none"][name], -lr * wd * w0[name], rtol=0, atol=1e-7)
            assert not torch.equal(p, runs["none"][name])
        else:
            assert torch.equal(p, runs["none"][name]), name


def test_weight_decay_params_errors(small_fmnist):
    with pytest.raises(ValueError, match="weight_decay_params"):
        train.fit(_plain, small_fmnist, steps=1, lr=0.1, weight_decay=0.1, weight_decay_params=["nope."],
                  progress=False)
    with pytest.raises(TypeError, match="weight_decay_params"):
        train.fit(_plain, small_fmnist, steps=1, lr=0.1, weight_decay=0.1, weight_decay_params="fc1.",
                  progress=False)
