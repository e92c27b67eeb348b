"""Loss-landscape probes (Santurkar et al. 2018, Sec. 3.1) and the Theorem 4.1 ingredients."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from bnlab.models import deep_linear, dln_data, dln_loss, mlp
from bnlab.probes import (DEFAULT_STEP_MULTIPLIERS, Landscape, batch_loss, bn_gradient_probe, bn_gradient_terms,
                          landscape, landscape_probe, preserved_state, stack_landscapes, window_means)
from bnlab.train import fit, fit_full_batch

CE = nn.functional.cross_entropy


def _tiny(norm: str | None = None, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp((8, 6), activation="tanh", norm=norm, init_std=0.5, in_features=5, num_classes=3)


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


class _Quadratic(nn.Module):
    """L(w) = ½ wᵀHw: the landscape along the gradient is known in closed form."""

    def __init__(self, h: torch.Tensor, w: torch.Tensor) -> None:
        super().__init__()
        self.h = h
        self.w = nn.Parameter(w.clone())

    def loss(self) -> torch.Tensor:
        return 0.5 * self.w @ self.h @ self.w


def test_landscape_on_a_quadratic_matches_closed_form():
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    h = q @ torch.diag(torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 5.0], dtype=torch.float64)) @ q.T
    w = torch.randn(6, dtype=torch.float64)
    model = _Quadratic(h, w)
    lr = 0.1
    got = landscape(model, lambda m: m.loss(), lr)
    g = h @ w
    etas = np.asarray(DEFAULT_STEP_MULTIPLIERS) * lr
    expect_losses = [float(0.5 * (w - e * g) @ h @ (w - e * g)) for e in etas]
    np.testing.assert_allclose(got.etas, etas)
    np.testing.assert_allclose(got.loss, float(0.5 * w @ h @ w), rtol=1e-12)
    np.testing.assert_allclose(got.losses, expect_losses, rtol=1e-12)
    # ∇L(w − ηg) − g = −ηHg, so every step has the same Lipschitz ratio ‖Hg‖/‖g‖ ≤ λ_max = 5
    hg = float(torch.linalg.vector_norm(h @ g))
    gn = float(torch.linalg.vector_norm(g))
    np.testing.assert_allclose(got.grad_change, etas * hg, rtol=1e-10)
    np.testing.assert_allclose(got.beta_per_eta, hg / gn, rtol=1e-10)
    assert got.beta_smoothness <= 5.0 + 1e-9
    assert got.loss_range == pytest.approx(max(expect_losses) - min(expect_losses), rel=1e-10)
    assert got.predictiveness == pytest.approx(etas.max() * hg, rel=1e-10)
    assert got.relative_predictiveness == pytest.approx(etas.max() * hg / gn, rel=1e-10)


def test_landscape_matches_a_by_hand_computation_on_an_mlp():
    model = _tiny("bn")
    x, y = _batch()
    lr, mults = 0.2, (1.0, 3.0)
    got = landscape(model, batch_loss(CE, x, y), lr, mults)
    ref = copy.deepcopy(model).train()
    params = list(ref.parameters())
    g = torch.autograd.grad(CE(ref(x), y), params)
    for c, loss_k, change_k in zip(mults, got.losses, got.grad_change):
        moved = copy.deepcopy(ref)
        with torch.no_grad():
            for p, gp in zip(moved.parameters(), g):
                p.sub_(c * lr * gp)
        loss = CE(moved(x), y)
        gk = torch.autograd.grad(loss, list(moved.parameters()))
        diff = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(gk, g)))
        assert loss_k == pytest.approx(float(loss.detach()), rel=1e-5)
        assert change_k == pytest.approx(float(diff), rel=1e-4)
    assert got.grad_norm == pytest.approx(float(torch.sqrt(sum((a ** 2).sum() for a in g))), rel=1e-5)


@pytest.mark.parametrize("norm", [None, "bn", "noisy_bn"])
def test_landscape_leaves_everything_bit_identical(norm):
    model = _tiny(norm)
    x, y = _batch()
    CE(model(x), y).backward()  # populated gradients, as in the middle of training
    model.fc1.weight.grad = None  # and one missing gradient
    model.eval()
    model.fc2.train()  # mixed modes must come back as they were
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    before = model_state(model)
    landscape(model, batch_loss(CE, x, y), 0.5)
    after = model_state(model)
    assert_same_state(before, after)
    torch_next, np_next, py_next = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    assert torch.equal(torch_next, torch.rand(3))
    assert np.array_equal(np_next, np.random.rand(3))
    assert py_next == random.random()


def test_bn_is_probed_with_batch_statistics_even_in_eval_mode():
    model = _tiny("bn")
    x, y = _batch()
    with torch.no_grad():  # running statistics that differ from the batch statistics
        for _ in range(3):
            model(2.0 * x + 1.0)
    model.eval()
    got = landscape(model, batch_loss(CE, x, y), 0.1)
    train_loss = float(CE(copy.deepcopy(model).train()(x), y).detach())
    with torch.no_grad():
        eval_loss = float(CE(model(x), y))
    assert got.loss == pytest.approx(train_loss, rel=1e-6)
    assert abs(train_loss - eval_loss) > 1e-4
    assert not model.training


def test_noisy_layers_see_the_same_noise_at_every_point():
    model = _tiny("noisy_bn")
    x, y = _batch()
    a = landscape(model, batch_loss(CE, x, y), 0.3)
    b = landscape(model, batch_loss(CE, x, y), 0.3)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.grad_change, b.grad_change)


def test_landscape_probe_in_fit_changes_nothing_in_training():
    x, y = _batch(64)
    data = (x, y, x, y)
    plain = fit(lambda: _tiny("bn", seed=3), data, steps=20, lr=0.1, batch_size=16, seed=3, progress=False)
    probe = landscape_probe(every=5)
    assert probe.every == 5
    probed = fit(lambda: _tiny("bn", seed=3), data, steps=20, lr=0.1, batch_size=16, seed=3, progress=False,
                 probes={"landscape": probe}, probe_every=1)
    np.testing.assert_array_equal(plain.train_loss, probed.train_loss)
    np.testing.assert_array_equal(plain.test_acc, probed.test_acc)
    assert probed.probe_steps["landscape"] == [0, 5, 10, 15, 20]
    stacked = stack_landscapes(probed.probes["landscape"])
    assert stacked["losses"].shape == (5, len(DEFAULT_STEP_MULTIPLIERS))
    assert stacked["grad_change"].shape == (5, 4) and stacked["beta"].shape == (5, 4)
    np.testing.assert_array_equal(stacked["step"], [0, 5, 10, 15, 20])
    np.testing.assert_allclose(stacked["relative_predictiveness"],
                               stacked["relative_grad_change"].max(axis=1), rtol=1e-12)
    # the probe's loss at step t is the loss fit itself computed before the update of t
    np.testing.assert_allclose(stacked["loss"][:4], probed.train_loss[[0, 5, 10, 15]], rtol=1e-5)


def test_landscape_probe_on_the_deep_linear_network():
    x, y, _ = dln_data(n=200, seed=0)
    for bn in (False, True):
        hist = fit_full_batch(lambda: deep_linear(depth=6, bn=bn), x, y, steps=10, lr=1e-3,
                              probes={"landscape": landscape_probe(every=5)})
        recs = hist.probes["landscape"]
        assert [r.step for r in recs] == [0, 5, 10]
        assert recs[0].loss == pytest.approx(hist.train_loss[0], rel=1e-5)
        assert all(np.isfinite(r.losses).all() and r.grad_norm > 0 for r in recs)
        model = deep_linear(depth=6, bn=bn)
        direct = landscape(model, batch_loss(dln_loss, x, y), 1e-3)
        assert isinstance(direct, Landscape) and direct.beta_smoothness > 0


def test_bad_input_is_rejected():
    model = _tiny()
    loss_of = batch_loss(CE, *_batch())
    with pytest.raises(ValueError, match="lr"):
        landscape(model, loss_of, 0.0)
    with pytest.raises(ValueError, match="multipliers"):
        landscape(model, loss_of, 0.1, multipliers=())
    with pytest.raises(ValueError, match="multipliers"):
        landscape(model, loss_of, 0.1, multipliers=(1.0, -2.0))
    with pytest.raises(ValueError, match="scalar"):
        landscape(model, lambda m: m(_batch()[0]), 0.1)
    with pytest.raises(ValueError, match="every"):
        landscape_probe(every=0)
    with pytest.raises(ValueError, match="no landscape records"):
        stack_landscapes([])
    with pytest.raises(ValueError, match="batch-normalization"):
        bn_gradient_terms(model, loss_of)


def test_preserved_state_restores_after_an_exception():
    model = _tiny("bn")
    before = model_state(model)
    with pytest.raises(RuntimeError):
        with preserved_state(model):
            with torch.no_grad():
                model.fc1.weight.add_(1.0)
            model(_batch()[0])  # moves the running statistics
            raise RuntimeError("boom")
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("kind", ["bn", "torch_bn"])
def test_theorem_4_1_terms_bound_the_gradient_through_bn(kind):
    model = _tiny(kind)
    with torch.no_grad():  # a non-trivial γ
        model.norm1.weight.uniform_(0.5, 2.0)
    x, y = _batch(32)
    before = model_state(model)
    terms = bn_gradient_terms(model, batch_loss(CE, x, y))
    assert_same_state(before, model_state(model))
    assert sorted(terms) == ["norm1", "norm2"]
    for name, t in terms.items():
        assert t.m == 32 and t.grad_in_sq.shape == (model.get_submodule(name).num_features,)
        # the bound holds, and with ε → 0 it is an equality: tight to the ε/σ² correction
        assert np.all(t.grad_in_sq <= t.bound * (1 + 1e-6) + 1e-15)
        np.testing.assert_allclose(t.grad_in_sq, t.bound, rtol=1e-2)
        assert np.all((t.removed_fraction >= 0) & (t.removed_fraction <= 1 + 1e-9))
        np.testing.assert_allclose(t.reduction, t.gain * (1 - t.removed_fraction), rtol=1e-2)
    # gain is γ²/(Var + ε) of the BN layer's input
    with torch.no_grad():
        pre = model.fc1(model.flatten(x))
    var = pre.var(dim=0, unbiased=False).double()
    expect = model.norm1.weight.detach().double() ** 2 / (var + model.norm1.eps)
    np.testing.assert_allclose(terms["norm1"].gain, expect.numpy(), rtol=1e-5)


def test_theorem_4_1_terms_on_images_use_n_h_w_values_per_channel():
    from bnlab.layers import BatchNorm
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), BatchNorm(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 4))
    x = torch.randn(5, 2, 6, 6)
    y = torch.randint(0, 4, (5,))
    terms = bn_gradient_terms(model, batch_loss(CE, x, y))["1"]
    assert terms.m == 5 * 4 * 4
    assert np.all(terms.grad_in_sq <= terms.bound * (1 + 1e-6) + 1e-15)
    assert math.isclose(float(terms.grad_in_sq.sum()), float(terms.bound.sum()), rel_tol=1e-2)


def test_window_means_average_the_probes_up_to_each_checkpoint():
    steps = np.arange(0, 101, 10)
    values = steps.astype(float)
    got = window_means(steps, values, [50, 100], window=30)
    np.testing.assert_allclose(got, [np.mean([30, 40, 50]), np.mean([80, 90, 100])])
    with pytest.raises(ValueError, match="no probe"):
        window_means(steps, values, [55], window=4)
    with pytest.raises(ValueError, match="same length"):
        window_means(steps, values[:-1], [50], window=30)


def test_bn_gradient_probe_in_fit():
    x, y = _batch(64)
    hist = fit(lambda: _tiny("bn", seed=1), (x, y, x, y), steps=10, lr=0.1, batch_size=16, progress=False,
               probes={"thm41": bn_gradient_probe(every=5)})
    recs = hist.probes["thm41"]
    assert len(recs) == 3 and sorted(recs[0]) == ["norm1", "norm2"]
    assert all(np.all(t.grad_in_sq <= t.bound * (1 + 1e-6) + 1e-15) for r in recs for t in r.values())
