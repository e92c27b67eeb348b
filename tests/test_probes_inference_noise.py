"""probes.inference (running vs batch vs recomputed statistics), probes.noise, shifts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlab import models, probes, shifts, train
from bnlab.layers import recompute_population_statistics


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()]


def test_evaluate_running_and_batch_statistics_leave_the_model_unchanged():
    torch.manual_seed(0)
    model = models.mlp(widths=(16,), norm="bn", dropout=0.3)
    x, y = torch.randn(100, 784), torch.randint(0, 10, (100,))
    model(torch.randn(50, 784))  # move the running statistics
    before, flags = state(model)
    acc, loss = probes.evaluate(model, x, y, "running", batch_size=30)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    model.train()
    acc_b, _ = probes.evaluate(model, x, y, "batch", batch_size=25)
    after, flags_after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in after) and flags == flags_after
    with torch.no_grad():  # by hand: BN in training mode on each batch of 25, dropout off
        model.eval()
        model.norm1.train()
        want = torch.cat([model(x[i:i + 25]) for i in range(0, 100, 25)]).argmax(1)
    assert acc_b == pytest.approx((want == y).float().mean().item())
    with pytest.raises(ValueError, match="statistics must be"):
        probes.evaluate(model, x, y, "population")
    with pytest.raises(ValueError, match="BN layers"):
        probes.evaluate(models.mlp(widths=(8,)), x, y, "batch")


def test_population_statistics_on_a_copy_and_final_probe():
    torch.manual_seed(1)
    model = models.mlp(widths=(16,), norm="bn")
    x, y = torch.rand(120, 784), torch.randint(0, 10, (120,))
    before, _ = state(model)
    got = probes.with_population_statistics(model, x, x, y, batch_size=60)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    twin = models.mlp(widths=(16,), norm="bn")
    twin.load_state_dict(before)
    recompute_population_statistics(twin, x, batch_size=60)
    assert got == probes.evaluate(twin, x, y)
    data = (x, y, x, y)
    h = train.fit(lambda: models.mlp(widths=(16,), norm="bn"), data, steps=3, lr=0.1, batch_size=20,
                  probes={"end": probes.final(lambda m: probes.evaluate(m, x, y))})
    assert h.probes["end"][0] is None and h.probe_steps["end"] == [0, 3]
    assert h.probes["end"][-1] == (float(h.test_acc[-1]), pytest.approx(float(h.test_loss[-1]), rel=1e-5))


def test_batch_statistics_spread_matches_the_formulas():
    gen = torch.Generator().manual_seed(0)
    values = -torch.log1p(-torch.rand(200_000, generator=gen))  # Exponential(1): σ² = 1, κ = 9
    for m in (4, 64):
        means, variances = probes.batch_statistics(values, m, num_batches=20_000, seed=m)
        assert means.std() == pytest.approx(probes.batch_mean_std(1.0, m), rel=0.03)
        assert variances.std() == pytest.approx(probes.batch_variance_std(1.0, 9.0, m), rel=0.08)
    # Gaussian: the finite-m formula reduces to the textbook Var(σ_B²) = 2(m−1)σ⁴/m²
    for m in (2, 10):
        assert probes.batch_variance_std(2.0, 3.0, m) == pytest.approx(2.0 * np.sqrt(2 * (m - 1)) / m)
    with pytest.raises(ValueError, match="m must be >= 2"):
        probes.batch_statistics(values, 1)


def test_dropout_variance_ratio():
    assert probes.dropout_variance_ratio(0.0, 1.0, 0.5) == pytest.approx(2.0)
    torch.manual_seed(0)
    x = 1.0 + 0.5 * torch.randn(400_000)     # c = 1, v = 0.25
    y = torch.nn.functional.dropout(x, p=0.2, training=True)
    assert (y.var() / x.var()).item() == pytest.approx(probes.dropout_variance_ratio(1.0, 0.25, 0.8), rel=0.02)
    with pytest.raises(ValueError, match="keep probability"):
        probes.dropout_variance_ratio(0.0, 1.0, 0.0)


def test_corruptions():
    x = torch.rand(4, 1, 5, 5)
    assert torch.equal(shifts.corrupt(x, "brightness", 0.0), x)
    bright = shifts.corrupt(x, "brightness", 0.3)
    assert bright.min() >= 0.3 - 1e-7 and bright.max() <= 1.0
    flat = shifts.corrupt(x, "contrast", 0.0)
    torch.testing.assert_close(flat, x.mean((1, 2, 3), keepdim=True).expand_as(x))
    noisy = shifts.corrupt(x, "gaussian_noise", 0.2, seed=3)
    assert torch.equal(noisy, shifts.corrupt(x, "gaussian_noise", 0.2, seed=3)) and not torch.equal(noisy, x)
    assert noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="unknown corruption"):
        shifts.corrupt(x, "blur", 1.0)


def test_dropout_variance_shift_on_a_model():
    torch.manual_seed(0)
    model = models.mlp(widths=(50, 40), norm="bn", activation="relu", dropout=0.5)
    x = torch.rand(4000, 784)
    model(x[:500])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    out = probes.dropout_variance_shift(model, x, "drop1", "norm2", seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training
    assert torch.equal(rng, torch.get_rng_state())
    assert out["keep"] == 0.5 and out["var"].shape == (50,) and out["next_var_train"].shape == (40,)
    alive = out["var"] > 1e-6
    ratio = out["var_train"][alive] / out["var"][alive]
    want = probes.dropout_variance_ratio(out["mean"][alive], out["var"][alive], 0.5)
    assert np.median(np.abs(ratio / want - 1)) < 0.1
    assert np.all(out["next_var_train"] > out["next_var_test"])
    with pytest.raises(ValueError, match="not nn.Dropout"):
        probes.dropout_variance_shift(model, x, "act1", "norm2")
