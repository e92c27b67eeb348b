"""recompute_population_statistics: Algorithm 2 of Ioffe & Szegedy, with nothing else changed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import models
from bnlab.layers import BatchNorm, batchnorm_layers, recompute_population_statistics


def snapshot(model: nn.Module) -> dict:
    return {"params": {k: v.clone() for k, v in model.named_parameters()},
            "flags": {k: m.training for k, m in model.named_modules()},
            "tracked": {k: v.clone() for k, v in model.named_buffers() if k.endswith("num_batches_tracked")},
            "rng": torch.get_rng_state()}


def by_hand(model: nn.Module, x: torch.Tensor, m: int, batches: int, prefix: nn.Module) -> tuple:
    """Statistics of the input to the first BN layer, computed directly from the layer before it."""
    means, vars_ = [], []
    with torch.no_grad():
        for i in range(batches):
            h = prefix(x[i * m:(i + 1) * m])
            dims = (0,) + tuple(range(2, h.ndim))
            means.append(h.mean(dims))
            vars_.append(h.var(dims, unbiased=False))
    count = m * (h[0, 0].numel())
    return torch.stack(means).mean(0), torch.stack(vars_).mean(0) * count / (count - 1)


@pytest.mark.parametrize("kind", ["bn", "torch_bn"])
def test_mlp_statistics_equal_hand_computation_and_nothing_else_changes(kind):
    torch.manual_seed(0)
    model = models.mlp(widths=(20, 10), norm=kind, activation="relu")
    x = torch.randn(250, 784) * 2 + 0.5
    model.train()
    for _ in range(3):  # move the EMA away from its start and count some batches
        model(torch.randn(30, 784))
    model.norm2.eval()   # mixed flags must come back as they were
    before = snapshot(model)
    stats = recompute_population_statistics(model, x, batch_size=60, num_images=200)  # 3 batches of 60
    after = snapshot(model)
    for k in before["params"]:
        assert torch.equal(before["params"][k], after["params"][k])
    assert before["flags"] == after["flags"]
    for k in before["tracked"]:
        assert torch.equal(before["tracked"][k], after["tracked"][k])
    assert torch.equal(before["rng"], after["rng"])
    mean, var = by_hand(model, x, 60, 3, model.fc1)
    torch.testing.assert_close(model.norm1.running_mean, mean.float())
    torch.testing.assert_close(model.norm1.running_var, var.float())
    torch.testing.assert_close(stats["norm1"][0], mean.float())
    # the second layer's input: the first layer normalizing with each batch's statistics
    def prefix2(h):
        h = model.fc1(h)
        h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + model.norm1.eps)
        h = h * model.norm1.weight + model.norm1.bias
        return model.fc2(model.act1(h))
    mean2, var2 = by_hand(model, x, 60, 3, prefix2)
    torch.testing.assert_close(model.norm2.running_mean, mean2.float())
    torch.testing.assert_close(model.norm2.running_var, var2.float())


def test_conv_batchnorm2d_counts_every_position():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3)
    model = nn.Sequential(conv, nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3), BatchNorm(4))
    x = torch.randn(40, 2, 8, 8)
    recompute_population_statistics(model, x, batch_size=8)
    mean, var = by_hand(model, x, 8, 5, conv)
    torch.testing.assert_close(model[1].running_mean, mean.float())
    torch.testing.assert_close(model[1].running_var, var.float())
    assert set(batchnorm_layers(model)) == {"1", "4"}


def test_dropout_is_off_and_rng_untouched():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), BatchNorm(6))
    x = torch.randn(120, 5)
    model.train()
    state = torch.get_rng_state()
    recompute_population_statistics(model, x, batch_size=60)
    assert torch.equal(state, torch.get_rng_state())
    mean, _ = by_hand(model, x, 60, 2, model[0])  # dropout in eval mode is the identity
    torch.testing.assert_close(model[2].running_mean, mean.float())
    assert model.training and model[1].training


def test_bad_arguments():
    with pytest.raises(ValueError, match="no batch-norm layer"):
        recompute_population_statistics(nn.Linear(3, 3), torch.randn(10, 3))
    model = nn.Sequential(nn.Linear(3, 3), BatchNorm(3))
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        recompute_population_statistics(model, torch.randn(10, 3), batch_size=1)
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_population_statistics(model, torch.randn(10, 3), batch_size=60)


@pytest.mark.parametrize("kind", ["noisy_bn", "drift_bn"])
def test_noise_and_drift_controls_add_nothing_while_statistics_are_recomputed(kind):
    torch.manual_seed(0)
    control = models.mlp(widths=(16, 16), norm=kind, init_std=0.1)
    with torch.no_grad():
        for p in control.parameters():
            p.add_(0.05 * torch.randn_like(p))
    bn = models.mlp(widths=(16, 16), norm="bn", init_std=0.1)
    bn.load_state_dict({k: v for k, v in control.state_dict().items() if k in bn.state_dict()})
    x = torch.rand(240, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    state_before = {k: v.clone() for k, v in control.state_dict().items() if k.endswith(".t")}
    got, want = recompute_population_statistics(control, x), recompute_population_statistics(bn, x)
    if kind == "drift_bn":   # the inference network includes the drift reached so far (t = 0 here: none)
        assert all(torch.equal(v, control.state_dict()[k]) for k, v in state_before.items())
    for name in want:
        torch.testing.assert_close(got[name][0], want[name][0])
        torch.testing.assert_close(got[name][1], want[name][1])
    assert not any("_population_pass" in vars(m) for m in control.modules())


def test_is_batchnorm_knows_every_layer_that_uses_batch_statistics():
    from bnlab import layers
    yes = [layers.BatchNorm(3), nn.BatchNorm1d(3), nn.BatchNorm2d(3), layers.GhostBatchNorm(3, virtual_batch_size=2),
           layers.NoisyBatchNorm(3), layers.DetachedBatchNorm(3), layers.FrozenBatchNorm(3)]
    no = [layers.LayerNorm(3), nn.LayerNorm(3), layers.GroupNorm(1, 3), layers.LpNorm(3), nn.Linear(3, 3)]
    assert all(layers.is_batchnorm(m) for m in yes) and not any(layers.is_batchnorm(m) for m in no)
