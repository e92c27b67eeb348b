"""bnlab.probes.weights and .shape: known answers (norms, angles, scale invariance of W feeding BN,
kurtosis of known distributions), and the probe leaves the model and the run untouched."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnlab import models, probes, train


def bn_net(seed: int = 0):
    torch.manual_seed(seed)
    return models.mlp(widths=(16, 16), activation="relu", norm="bn", in_features=12, num_classes=4)


def batch(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


def test_weight_norms_and_effective_lr_on_chosen_weights():
    model = bn_net()
    with torch.no_grad():
        model.fc1.weight.fill_(0.5)  # 16×12 entries of 0.5: ‖W‖ = 0.5·√192
    norms = probes.weight_norms(model)
    assert list(norms) == ["fc1", "fc2", "out"]
    assert norms["fc1"] == pytest.approx(0.5 * math.sqrt(192), rel=1e-12)
    eff = probes.effective_learning_rates(model, lr=0.1, layers=["fc1"])
    assert eff["fc1"] == pytest.approx(0.1 / (0.25 * 192), rel=1e-12)
    with pytest.raises(ValueError, match="no module named"):
        probes.weight_norms(model, layers=["fc9"])


@pytest.mark.parametrize("theta", [0.0, 1e-6, 0.01, 1.0, math.pi / 2, 3.0])
def test_angle_known_values_including_tiny_ones(theta):
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(theta), math.sin(theta)], [0.0, 0.0]], dtype=torch.float64) * 3.0
    assert probes.angle(a, b) == pytest.approx(theta, abs=1e-12)


def test_angle_errors():
    with pytest.raises(ValueError, match="same shape"):
        probes.angle(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="zero tensor"):
        probes.angle(torch.zeros(2), torch.ones(2))


def test_gradient_is_orthogonal_to_weights_feeding_bn_but_not_to_the_output_layer():
    model = bn_net()
    x, y = batch()
    cos = probes.grad_weight_cosine(model, x, y)
    assert abs(cos["fc1"]) < 1e-5 and abs(cos["fc2"]) < 1e-5
    assert abs(cos["out"]) > 1e-3
    plain = models.mlp(widths=(16, 16), activation="relu", in_features=12, num_classes=4)
    assert abs(probes.grad_weight_cosine(plain, x, y)["fc2"]) > 1e-3  # no BN: no orthogonality


def test_scale_response_is_invariance_with_bn_and_not_without():
    model = bn_net()
    x, y = batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = probes.scale_response(model, "fc2", 10.0, x, y)
    assert r["output_change"] < 1e-4 and r["grad_ratio"] == pytest.approx(0.1, abs=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # left untouched
    plain = models.mlp(widths=(16, 16), activation="relu", in_features=12, num_classes=4)
    assert probes.scale_response(plain, "fc2", 10.0, x, y)["output_change"] > 0.5


def test_weight_probe_angle_equals_the_angle_of_one_sgd_step_and_does_not_change_the_run():
    x, y = batch(96)
    data = (x[:80], y[:80], x[80:], y[80:])
    probe = probes.WeightProbe(every=1, layers=["fc1", "fc2"])
    h = train.fit(bn_net, data, steps=5, lr=0.2, batch_size=16, probes={"w": probe}, progress=False)
    h0 = train.fit(bn_net, data, steps=5, lr=0.2, batch_size=16, progress=False)
    np.testing.assert_array_equal(h.train_loss, h0.train_loss)
    rec = probes.stack_records(h.probes["w"])
    assert rec["fc1"]["angle"].shape == (6,) and math.isnan(rec["fc1"]["angle"][0])
    # replay the first step by hand: W1 = W0 − lr ∇L(W0) on the same batch
    model = bn_net()
    gen = torch.Generator().manual_seed(0)
    idx = next(train.batch_indices(80, 16, 1, gen))
    w0 = model.fc2.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
    (g,) = torch.autograd.grad(loss, [model.fc2.weight])
    w1 = w0 - 0.2 * g
    assert rec["fc2"]["angle"][1] == pytest.approx(probes.angle(w0, w1), rel=1e-5)
    assert rec["fc2"]["norm"][0] == pytest.approx(float(w0.double().norm()), rel=1e-12)
    assert rec["fc2"]["effective_lr"][0] == pytest.approx(0.2 / float(w0.double().norm()) ** 2, rel=1e-12)
    # ∇L ⟂ W gives ‖W1‖² = ‖W0‖² + lr²‖g‖²: the norm can only grow without weight decay
    assert rec["fc2"]["norm"][1] > rec["fc2"]["norm"][0]


def test_weight_probe_starts_fresh_for_a_new_run():
    x, y = batch(96)
    data = (x[:80], y[:80], x[80:], y[80:])
    probe = probes.WeightProbe(every=2)
    for _ in range(2):
        h = train.fit(bn_net, data, steps=4, lr=0.1, batch_size=16, probes={"w": probe}, progress=False)
        assert math.isnan(h.probes["w"][0]["fc1"]["angle"]) and not math.isnan(h.probes["w"][1]["fc1"]["angle"])
    with pytest.raises(ValueError, match="every"):
        probes.WeightProbe(every=0)


def test_excess_kurtosis_of_known_distributions():
    g = np.random.default_rng(0)
    z = np.stack([g.standard_normal(200_000), g.uniform(-1, 1, 200_000), g.laplace(size=200_000)], axis=1)
    k = probes.excess_kurtosis(torch.from_numpy(z))
    np.testing.assert_allclose(k, [0.0, -1.2, 3.0], atol=0.1)
    # an affine map per unit leaves each unit's kurtosis unchanged (up to round-off)
    np.testing.assert_allclose(probes.excess_kurtosis(3.0 * z - 7.0), k, rtol=1e-9)
    # pooling two Gaussian units with different scales gives heavy tails: 3(σ1⁴+σ2⁴)/... > 0
    mix = np.stack([g.standard_normal(100_000), 4 * g.standard_normal(100_000)], axis=1)
    expected = 3 * (1 + 256) / 2 / ((1 + 16) / 2) ** 2 - 3  # E z⁴ / (E z²)² − 3 for the 50/50 mixture
    assert probes.pooled_excess_kurtosis(mix) == pytest.approx(expected, abs=0.05)
    with pytest.raises(ValueError, match="shape"):
        probes.excess_kurtosis(np.zeros(5))


def test_kurtosis_probe_bn_keeps_each_units_kurtosis_and_leaves_the_model_alone():
    model = bn_net()
    x, _ = batch(256)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rec = probes.KurtosisProbe(x, ["norm1", "act1"], keep_values=True).measure(model)
    assert rec["act1"]["values"].shape == (256, 16)
    # act1's input is BN's output: an affine map per unit of norm1's input
    np.testing.assert_allclose(rec["act1"]["per_unit"], rec["norm1"]["per_unit"], atol=1e-6)
    assert rec["act1"]["per_unit"].shape == (16,) and isinstance(rec["act1"]["pooled"], float)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="modules is empty"):
        probes.KurtosisProbe(x, [])


def test_parameter_snapshot_records_start_and_end_copies():
    x, y = batch(96)
    data = (x[:80], y[:80], x[80:], y[80:])
    snap = probes.ParameterSnapshot(every=4, names=["norm1.", "out.bias"])
    h = train.fit(bn_net, data, steps=4, lr=0.1, batch_size=16, probes={"p": snap}, progress=False)
    first, last = h.probes["p"]
    assert sorted(first) == ["norm1.bias", "norm1.weight", "out.bias"]
    np.testing.assert_array_equal(first["norm1.weight"], np.ones(16))  # γ starts at 1
    assert not np.array_equal(first["norm1.weight"], last["norm1.weight"])
    with pytest.raises(ValueError, match="no parameter matches"):
        probes.ParameterSnapshot(every=1, names=["fc9."])(type("C", (), {"model": bn_net()})())
