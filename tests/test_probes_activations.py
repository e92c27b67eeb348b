"""bnlab.probes, activation statistics and gradient norms: known answers on tiny models,
and proof that a probe never changes the model or the training run."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import models, probes, train
from bnlab.layers import BatchNorm


def linear_sigmoid() -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """fc: R^2 → R^3 with chosen weights, then a sigmoid; returns (model, W, b)."""
    model = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.Sigmoid()))
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    b = torch.tensor([0.5, 0.0, -1.0])
    with torch.no_grad():
        model.fc.weight.copy_(w)
        model.fc.bias.copy_(b)
    return model, w, b


def bn_dropout_net() -> nn.Sequential:
    """Linear → BN → Dropout → Sigmoid → Linear: has running statistics and uses the RNG."""
    torch.manual_seed(1)
    return nn.Sequential(OrderedDict(fc=nn.Linear(5, 4, bias=False), norm=BatchNorm(4), drop=nn.Dropout(0.5),
                                     act=nn.Sigmoid(), out=nn.Linear(4, 3)))


def snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in model.state_dict().items()},
            "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
            "flags": [m.training for m in model.modules()]}


def assert_same(model: nn.Module, snap: dict) -> None:
    for k, v in model.state_dict().items():
        assert torch.equal(v, snap["state"][k]), f"{k} changed"
    for n, p in model.named_parameters():
        if snap["grads"][n] is None:
            assert p.grad is None, f"{n}.grad appeared"
        else:
            assert torch.equal(p.grad, snap["grads"][n]), f"{n}.grad changed"
    assert [m.training for m in model.modules()] == snap["flags"]


def test_record_inputs_is_the_preactivation():
    model, w, b = linear_sigmoid()
    x = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0], [2.0, -1.0]])
    z = probes.record_inputs(model, x, ["act"])["act"]
    torch.testing.assert_close(z, x @ w.T + b, rtol=0, atol=1e-6)
    zi, zo = probes.record(model, x, ["act"])["act"]
    torch.testing.assert_close(zo, torch.sigmoid(zi))


def test_unit_percentiles_known_columns():
    base = torch.arange(101, dtype=torch.float64)[torch.randperm(101, generator=torch.Generator().manual_seed(0))]
    z = torch.stack([base, 2 * base, base - 50], dim=1)  # (101, 3): column j's q-th percentile is known
    p = probes.unit_percentiles(z, (15, 50, 85))
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p, [[15, 30, -35], [50, 100, 0], [85, 170, 35]])
    # images: percentiles per channel over batch and space
    img = torch.stack([base.view(1, 101), -base.view(1, 101)], dim=1).view(1, 2, 1, 101)
    np.testing.assert_allclose(probes.unit_percentiles(img, (50, 85)), [[50, -50], [85, -15]])
    with pytest.raises(ValueError, match="percentiles"):
        probes.unit_percentiles(z, (15, 150))


def test_bn_input_train_mode_uses_probe_batch_statistics_eval_mode_running_ones():
    torch.manual_seed(0)
    model = models.mlp(widths=(4,), norm="bn", in_features=6, num_classes=3)
    x = torch.randn(200, 6) * 3 + 1
    pre = x @ model.fc1.weight.detach().T
    # train mode: BN normalizes with the probe batch's own mean and (biased) variance, γ=1, β=0
    z = probes.record_inputs(model, x, ["act1"], mode="train")["act1"]
    var, mean = torch.var_mean(pre, dim=0, correction=0)
    torch.testing.assert_close(z, (pre - mean) / torch.sqrt(var + 1e-5))
    # eval mode: fresh running statistics (mean 0, var 1)
    z_eval = probes.record_inputs(model, x, ["act1"], mode="eval")["act1"]
    torch.testing.assert_close(z_eval, pre / np.sqrt(1 + 1e-5))
    # the percentile probe reports the same numbers
    probe = probes.InputPercentiles(x, "act1", q=(15, 50, 85), every=7)
    assert probe.every == 7
    np.testing.assert_allclose(probe.measure(model), np.percentile(z.double().numpy(), [15, 50, 85], axis=0),
                               rtol=1e-12)


def test_layer_stats_known_values():
    z = torch.tensor([[-5.0, -1.0], [0.0, 3.0], [6.0, 1.0]])
    s = probes.layer_stats(z, torch.sigmoid(z), threshold=4.0)
    vals = z.double().flatten().numpy()
    assert s["mean"] == pytest.approx(vals.mean()) and s["std"] == pytest.approx(vals.std())
    assert s["saturated"] == pytest.approx(2 / 6)
    assert s["out_mean"] == pytest.approx(torch.sigmoid(z).double().mean().item())
    assert probes.layer_stats(z, threshold=5.5)["saturated"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="threshold"):
        probes.layer_stats(z, threshold=0.0)


def test_activation_stats_per_layer_on_a_known_model():
    model, w, b = linear_sigmoid()
    x = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-4.0, 0.5]])
    assert probes.activation_modules(model) == ["act"]
    stats = probes.activation_stats(model, x)
    z = (x @ w.T + b).double()
    assert stats["act"]["mean"] == pytest.approx(z.mean().item())
    assert stats["act"]["saturated"] == pytest.approx(float((z.abs() > 4).double().mean()))  # 6.0 and 5.0 → 2/9
    assert stats["act"]["saturated"] == pytest.approx(2 / 9)
    deep = models.mlp(widths=(8, 8, 8), in_features=6, num_classes=2)
    assert list(probes.activation_stats(deep, torch.randn(10, 6))) == ["act1", "act2", "act3"]


def test_bad_arguments_give_clear_errors():
    model, _, _ = linear_sigmoid()
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="no module named"):
        probes.record_inputs(model, x, ["act3"])
    with pytest.raises(ValueError, match="mode"):
        probes.record_inputs(model, x, ["act"], mode="inference")
    with pytest.raises(ValueError, match="every"):
        probes.InputPercentiles(x, "act", every=0)
    with pytest.raises(ValueError, match="params"):
        probes.gradient_norms(model, x, torch.zeros(3, dtype=torch.long), params="biases")


def test_probes_leave_model_grads_running_stats_and_rng_untouched():
    model = bn_dropout_net().train()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for _ in range(3):  # non-trivial running statistics and existing .grad
        nn.functional.cross_entropy(model(x), y).backward()
    model.out.bias.grad = None  # a parameter without .grad must stay without
    snap = snapshot(model)
    ctx = train.ProbeContext(model, 3, x, y, 0.1, nn.functional.cross_entropy, None)  # type: ignore[arg-type]
    xp = torch.randn(40, 5)
    torch.manual_seed(123)
    expected_draw = torch.rand(4)
    torch.manual_seed(123)
    a = probes.InputPercentiles(xp, "act")(ctx)
    b = probes.ActivationStats(xp, mode="eval")(ctx)
    g = probes.GradientNorms()(ctx)
    assert torch.equal(torch.rand(4), expected_draw), "a probe consumed random numbers"
    assert_same(model, snap)
    assert a.shape == (3, 4) and set(b) == {"act"} and list(g) == ["fc", "out"]
    model.eval()
    snap = snapshot(model)
    probes.InputPercentiles(xp, "act", mode="train").measure(model)
    assert_same(model, snap)  # eval flag restored too


def test_fit_with_probes_runs_exactly_as_without():
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(240, 1, 4, 4, generator=g), torch.randint(0, 3, (240,), generator=g),
            torch.rand(60, 1, 4, 4, generator=g), torch.randint(0, 3, (60,), generator=g))

    def make() -> nn.Module:
        return models.mlp(widths=(6, 6), norm="bn", in_features=16, num_classes=3, init_std=0.1)

    kw = dict(steps=25, lr=0.5, batch_size=12, seed=3, eval_every=10, progress=False)
    plain = train.fit(make, data, **kw)
    xp = data[2][:30]
    probed = train.fit(make, data, probes={"pct": probes.InputPercentiles(xp, "act2", every=5),
                                           "stats": probes.ActivationStats(xp, every=10),
                                           "grad": probes.GradientNorms(every=10)}, **kw)
    np.testing.assert_array_equal(plain.train_loss, probed.train_loss)
    np.testing.assert_array_equal(plain.test_acc, probed.test_acc)
    steps, pct = probed.probe("pct")
    assert steps.tolist() == [0, 5, 10, 15, 20, 25] and pct.shape == (6, 3, 6)
    stats = probes.stack_records(probed.probes["stats"])
    assert set(stats) == {"act1", "act2"} and stats["act2"]["saturated"].shape == (4,)
    grads = probes.stack_records(probed.probes["grad"])
    assert list(grads) == ["fc1", "fc2", "out"] and np.all(grads["fc1"] > 0)
    # in train mode the probe sees BN's output on the probe batch: per-unit mean β, std ≈ γ
    model = make()
    np.testing.assert_allclose(probes.record_inputs(model, xp, ["act2"])["act2"].mean(0).numpy(), 0, atol=1e-6)


def test_gradient_norms_known_answer_and_against_backward():
    lin = nn.Sequential(OrderedDict(fc=nn.Linear(3, 1, bias=False)))
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    # loss = Σ_n w·x_n  ⇒  ∂loss/∂w = Σ_n x_n = (1.5, 1, 5)
    norms = probes.gradient_norms(lin, x, torch.zeros(2), loss_fn=lambda out, y: out.sum())
    assert norms == {"fc": pytest.approx(float(np.linalg.norm([1.5, 1.0, 5.0])))}
    assert lin.fc.weight.grad is None
    torch.manual_seed(0)
    model = models.mlp(widths=(5, 5), norm="bn", in_features=4, num_classes=3)
    xb, yb = torch.randn(8, 4), torch.randint(0, 3, (8,))
    ref = copy.deepcopy(model)
    nn.functional.cross_entropy(ref(xb), yb).backward()
    got = probes.gradient_norms(model, xb, yb, params="all")
    assert list(got) == [n for n, _ in ref.named_parameters()]
    for n, p in ref.named_parameters():
        assert got[n] == pytest.approx(p.grad.norm().item(), rel=1e-6)
    assert got["fc1.weight"] == probes.gradient_norms(model, xb, yb)["fc1"]


def test_drift_and_stack_records():
    series = np.array([[0.0, 1.0], [2.0, 1.5], [-1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(probes.drift(series), [2.0, 1.0])
    stacked = probes.stack_records([{"a": {"m": 1.0}}, {"a": {"m": 3.0}}])
    np.testing.assert_allclose(stacked["a"]["m"], [1.0, 3.0])
    with pytest.raises(ValueError):
        probes.stack_records([])


def test_probe_batch_is_fixed_and_from_the_test_set():
    x_test = torch.arange(50, dtype=torch.float32).view(50, 1)
    data = train._as_dataset((x_test, torch.zeros(50, dtype=torch.long), x_test + 100, torch.zeros(50, dtype=torch.long)))
    a, b = probes.probe_batch(data, 10), probes.probe_batch(data, 10)
    assert torch.equal(a, b) and a.shape == (10, 1) and bool((a >= 100).all())
    with pytest.raises(ValueError, match="between 1"):
        probes.probe_batch(data, 51)


def test_unit_drifts_and_typical_unit_known_answer():
    steps = np.array([0, 10, 20, 30])
    pct = np.zeros((4, 3, 3))
    pct[:, 1, 0] = [0.0, 1.0, 2.0, 5.0]     # median of unit 0 drifts 2 by step 20, 5 overall
    pct[:, 1, 1] = [1.0, 1.5, 0.5, 1.0]     # unit 1: 0.5
    pct[:, 1, 2] = [0.0, -3.0, 0.0, 0.0]    # unit 2: 3
    pct[:, 0, :] = 100.0                    # other percentiles must not matter
    np.testing.assert_allclose(probes.unit_drifts(steps, pct, upto=20), [2.0, 0.5, 3.0])
    np.testing.assert_allclose(probes.unit_drifts(steps, pct), [5.0, 0.5, 3.0])
    assert probes.typical_unit(probes.unit_drifts(steps, pct, upto=20)) == 0   # median of 0.5, 2, 3
    assert probes.typical_unit(probes.unit_drifts(steps, pct)) == 2            # median of 0.5, 3, 5
    assert probes.typical_unit(np.array([4.0, 1.0, 3.0, 2.0])) == 2            # upper middle of 4
    with pytest.raises(ValueError, match="no probe"):
        probes.unit_drifts(steps, pct, upto=-1)
    with pytest.raises(ValueError, match="percentiles"):
        probes.unit_drifts(steps, pct[:, 1, :])
    with pytest.raises(ValueError, match="which"):
        probes.unit_drifts(steps, pct, which=3)
    with pytest.raises(ValueError, match="non-empty"):
        probes.typical_unit(np.array([]))
