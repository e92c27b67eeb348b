"""Layer Jacobians and their singular values, against cases with a known answer."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import models, probes
from bnlab.layers import BatchNorm, norm_kinds
from bnlab.layers.batchnorm import _under_torch_func


def _snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]


def test_blocks_cut_after_each_activation():
    net = models.mlp(widths=(5, 4), norm="bn", in_features=6, num_classes=3)
    names = [n for n, _ in probes.blocks(net)]
    assert names == ["fc1→norm1→act1", "fc2→norm2→act2", "out"]
    with pytest.raises(TypeError, match="nn.Sequential"):
        probes.blocks(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no nonlinearity"):
        probes.blocks(nn.Sequential(nn.Linear(2, 2)))


def test_plain_layer_jacobian_is_activation_slope_times_weight():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    jacs = dict(probes.layer_jacobians(net, x))
    w, b = net[0].weight.double(), net[0].bias.double()
    z = x.double() @ w.T + b
    expected = (1 - torch.tanh(z) ** 2)[:, :, None] * w[None]          # (B, 3, 4)
    torch.testing.assert_close(jacs["0→1"], expected)
    torch.testing.assert_close(jacs["2"], net[2].weight.double().expand(5, 2, 3))
    e2e = probes.input_output_jacobian(net, x)
    for i in range(5):
        ref = torch.autograd.functional.jacobian(lambda v: net.double()(v), x[i].double())
        torch.testing.assert_close(e2e[i], ref)
    net.float()


def test_frozen_bn_jacobian_is_gamma_over_sigma_times_weight():
    torch.manual_seed(1)
    bn = BatchNorm(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
    net = nn.Sequential(nn.Linear(4, 3, bias=False), bn, nn.Identity())
    x = torch.randn(8, 4) * 3 + 1
    before = _snapshot(net)
    jac = probes.layer_jacobians(net, x)[0][1]
    z = x.double() @ net[0].weight.double().T
    scale = bn.weight.double() / torch.sqrt(z.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(jac, (scale[:, None] * net[0].weight.double()).expand(8, 3, 4))
    for a, b in zip(before, _snapshot(net)):
        assert torch.equal(a, b)                   # running statistics untouched
    assert net.training


def test_frozen_statistics_reproduce_the_training_output():
    torch.manual_seed(2)
    net = models.mlp(widths=(6, 5), norm="bn", activation="relu", in_features=7, num_classes=3)
    nn.init.normal_(net.norm1.bias)
    x = torch.randn(10, 7)
    frozen = probes.frozen_statistics(net, x)
    with torch.no_grad():
        train_out = net.train()(x)
        torch.testing.assert_close(frozen(x), train_out)
    assert not frozen.training
    with pytest.raises(ValueError, match="at least 2"):
        probes.frozen_statistics(net, x[:1])


def test_batch_jacobian_of_bn_projects_out_two_directions_per_unit():
    # BN alone, training mode: per unit, dy/dx = (γ/σ)(I − 11ᵀ/B − x̂x̂ᵀ/B), so the singular
    # values are γ/σ (B − 2 times) and 0 (twice) for every unit (ε = 0).
    torch.manual_seed(3)
    b, d = 6, 3
    bn = BatchNorm(d)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 3.0]))
    net = nn.Sequential(bn, nn.Identity())
    x = torch.randn(b, d) * torch.tensor([1.0, 2.0, 0.5])
    spec = probes.jacobian_spectra(net, x, statistics="batch")
    sv = np.sort(spec.singular_values[0].ravel())
    var = x.double().var(0, unbiased=False).numpy() + bn.eps
    gamma = bn.weight.detach().double().numpy()
    # with ε > 0 the x̂ direction is not killed exactly: its gain is γ/√(σ²+ε) · ε/(σ²+ε)
    expected = np.sort(np.concatenate([np.zeros(d), gamma * bn.eps / var ** 1.5,
                                       np.repeat(gamma / np.sqrt(var), b - 2)]))
    np.testing.assert_allclose(sv, expected, atol=1e-9, rtol=1e-9)
    assert spec.end_to_end is None
    # against torch's own BatchNorm1d differentiated by autograd
    ref = nn.Sequential(nn.BatchNorm1d(d), nn.Identity())
    ref.load_state_dict(net.state_dict())
    j_ours = probes.batch_jacobians(net, x)[0][1]
    j_ref = probes.batch_jacobians(ref, x)[0][1]
    torch.testing.assert_close(j_ours, j_ref)


def test_batch_jacobian_without_bn_is_block_diagonal_frozen_one():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    full = probes.batch_jacobians(net, x, only=[0])[0][1].view(5, 4, 5, 3)
    per = probes.layer_jacobians(net, x)[0][1]
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(full[i, :, j], per[i] if i == j else torch.zeros_like(per[i]))
    with pytest.raises(ValueError, match="blocks 0..1"):
        probes.batch_jacobians(net, x, only=[2])


def test_orthogonal_linear_network_has_unit_singular_values():
    torch.manual_seed(5)
    layers = []
    for _ in range(3):
        lin = nn.Linear(6, 6, bias=False)
        nn.init.orthogonal_(lin.weight)
        layers += [lin, nn.Identity()]
    net = nn.Sequential(*layers)
    spec = probes.jacobian_spectra(net, torch.randn(4, 6))
    for s in spec.singular_values + [spec.end_to_end]:
        np.testing.assert_allclose(s, 1.0, atol=1e-6)       # float32 weights: orthogonal to ~1e-7
    np.testing.assert_allclose(spec.median(), 1.0, atol=1e-6)
    np.testing.assert_allclose(spec.rms(), 1.0, atol=1e-6)
    np.testing.assert_allclose(spec.percentiles((0, 10, 90, 100)), 1.0, atol=1e-6)
    assert spec.layers == ["0→1", "2→3", "4→5"]


def test_spectra_leave_the_model_bit_identical_and_check_arguments():
    torch.manual_seed(6)
    net = models.mlp(widths=(5,), norm="bn", in_features=4, num_classes=3)
    x = torch.randn(7, 4)
    before = _snapshot(net)
    state = torch.get_rng_state()
    probes.jacobian_spectra(net, x)
    probes.jacobian_spectra(net, x, statistics="batch", only=[0])
    for a, b in zip(before, _snapshot(net)):
        assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="statistics must be"):
        probes.jacobian_spectra(net, x, statistics="running")
    with pytest.raises(ValueError, match="only="):
        probes.jacobian_spectra(net, x, only=[0])
    with pytest.raises(ValueError, match="examples="):
        probes.jacobian_spectra(net, x, statistics="batch", examples=2)
    with pytest.raises(ValueError, match="from 1 to the batch size 7"):
        probes.layer_jacobians(net, x, examples=8)


def test_examples_take_the_first_inputs_with_the_whole_batch_statistics():
    torch.manual_seed(7)
    net = models.mlp(widths=(5, 4), norm="bn", in_features=6, num_classes=3)
    x = torch.randn(9, 6)
    some = probes.layer_jacobians(net, x, examples=3)
    every = probes.layer_jacobians(net, x)
    for (_, a), (_, b) in zip(some, every):
        assert a.shape[0] == 3
        torch.testing.assert_close(a, b[:3])
    spec = probes.jacobian_spectra(net, x, examples=3)
    assert spec.end_to_end.shape == (3, 3) and spec.singular_values[0].shape == (3, 5)


def test_growth_per_layer_recovers_a_geometric_rate():
    k = np.arange(10)
    assert math.isclose(probes.growth_per_layer(3.0 * 1.2 ** (10 - k)), 1.2, rel_tol=1e-12)
    assert math.isclose(probes.growth_per_layer(0.5 ** -k), 0.5, rel_tol=1e-12)   # vanishing: < 1
    with pytest.raises(ValueError, match="at least 2"):
        probes.growth_per_layer([1.0])
    with pytest.raises(ValueError, match="positive and finite"):
        probes.growth_per_layer([1.0, 0.0, 2.0])


def test_percentiles_pool_examples_and_directions_per_block():
    torch.manual_seed(8)
    net = models.mlp(widths=(5, 4), activation="relu", in_features=6, num_classes=3)
    spec = probes.jacobian_spectra(net, torch.randn(9, 6))
    p = spec.percentiles((10, 50, 90))
    assert p.shape == (3, 3)
    for k, s in enumerate(spec.singular_values):
        assert s.shape[0] == 9
        np.testing.assert_allclose(p[k], np.percentile(s.ravel(), [10, 50, 90]))
        assert p[k, 0] <= p[k, 1] <= p[k, 2]
    np.testing.assert_allclose(p[:, 1], spec.median())
    for bad in [(), (50, 101), (-1,)]:
        with pytest.raises(ValueError, match="percentiles in"):
            spec.percentiles(bad)


# Norm kinds for which an eval-mode copy with the batch's statistics computes the training-mode
# output (frozen_statistics works), and those it refuses, with the class the message names.
FROZEN_SUPPORTED = ["bn", "torch_bn", "bn_detached", "bn_mean", "bn_scale", "drift_bn", "ghost_bn",
                    "l1", "l2", "linf", "ln", "gn"]
FROZEN_REFUSED = {"noisy_bn": "NoisyBatchNorm", "noise": "NoiseInjection", "bn_reestimated": "ReestimatedBatchNorm",
                  "bn_frozen": "FrozenBatchNorm", "ghost_bn": "GhostBatchNorm"}
FROZEN_FUNCTIONS = {
    "frozen_statistics": probes.frozen_statistics,
    "layer_jacobians": probes.layer_jacobians,
    "input_output_jacobian": probes.input_output_jacobian,
    "jacobian_spectra": probes.jacobian_spectra,
}


def _kind_net(kind: str, batch: int, ghost: int | None = None) -> nn.Sequential:
    """A small ReLU MLP with norm ``kind``, its norm parameters and running statistics moved off their defaults."""
    kw = {"virtual_batch_size": ghost or batch} if kind == "ghost_bn" else {"rate": 0.3} if kind == "drift_bn" else None
    net = models.mlp(widths=(6, 5), activation="relu", norm=kind, in_features=7, num_classes=3, norm_kwargs=kw)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("norm"):
                p.add_(0.5 * torch.randn_like(p))
        net.train()
        for _ in range(2):
            net(2 * torch.randn(batch, 7) + 1)   # running statistics (and the drift's t) away from their start
    return net


def _rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _assert_same_rng(before: tuple) -> None:
    after = _rng_states()
    assert torch.equal(before[0], after[0])
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1]) and before[1][2:] == after[1][2:]
    assert before[2] == after[2]


def test_every_norm_kind_is_either_frozen_or_refused():
    assert set(FROZEN_SUPPORTED) | set(FROZEN_REFUSED) == set(norm_kinds())


@pytest.mark.parametrize("kind", FROZEN_SUPPORTED)
def test_frozen_statistics_compute_the_training_output_for_every_supported_kind(kind):
    torch.manual_seed(10)
    b = 8
    net = _kind_net(kind, b)
    x = torch.randn(b, 7) * 1.5 - 0.5
    before = _snapshot(net)
    frozen = probes.frozen_statistics(net, x)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), copy.deepcopy(net).train()(x))
    assert not frozen.training
    for a, c in zip(before, _snapshot(net)):
        assert torch.equal(a, c)
    # the per-example Jacobian is that of the copy's function, example by example
    e2e = probes.input_output_jacobian(net, x, examples=2)
    ref = frozen.double()
    for i in range(2):
        torch.testing.assert_close(e2e[i], torch.autograd.functional.jacobian(ref, x[i:i + 1].double())[0, :, 0])


@pytest.mark.parametrize("kind", sorted(FROZEN_REFUSED))
def test_frozen_jacobians_refuse_layers_without_a_frozen_copy(kind):
    torch.manual_seed(11)
    b = 8
    net = _kind_net(kind, b, ghost=4 if kind == "ghost_bn" else None)
    x = torch.randn(b, 7)
    before, rng = _snapshot(net), _rng_states()
    for name, fn in FROZEN_FUNCTIONS.items():
        with pytest.raises(ValueError, match=rf"not defined for layer 'norm1' \({FROZEN_REFUSED[kind]}\)") as err:
            fn(net, x)
        assert "batch_jacobians" in str(err.value), name          # what to do instead
    for a, c in zip(before, _snapshot(net)):
        assert torch.equal(a, c)
    _assert_same_rng(rng)
    spec = probes.jacobian_spectra(net, x, statistics="batch", only=[1])   # the batch Jacobian takes them all
    assert spec.singular_values[0].shape == (1, b * 5)


def test_refusals_say_why():
    torch.manual_seed(12)
    x = torch.randn(8, 7)
    reasons = {"noisy_bn": "random noise", "noise": "random noise", "bn_reestimated": "stored statistics",
               "bn_frozen": "stored statistics", "ghost_bn": "virtual_batch_size=4"}
    for kind, reason in reasons.items():
        with pytest.raises(ValueError, match=reason):
            probes.frozen_statistics(_kind_net(kind, 8, ghost=4), x)


def test_ghost_bn_is_frozen_on_exactly_one_ghost_batch():
    torch.manual_seed(13)
    net = _kind_net("ghost_bn", 8, ghost=4)
    with pytest.raises(ValueError, match="exactly 4 examples"):
        probes.layer_jacobians(net, torch.randn(8, 7))
    x = torch.randn(4, 7)
    with torch.no_grad():
        torch.testing.assert_close(probes.frozen_statistics(net, x)(x), copy.deepcopy(net).train()(x))


def test_an_unknown_batchnorm_class_is_refused():
    class MyBatchNorm(BatchNorm):
        pass

    net = nn.Sequential(nn.Linear(4, 3), MyBatchNorm(3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"layer '1' \(MyBatchNorm\).*will not guess"):
        probes.jacobian_spectra(net, torch.randn(5, 4))


def test_torch_bn_without_running_statistics_is_frozen_too():
    torch.manual_seed(14)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(6, 4)
    with torch.no_grad():
        torch.testing.assert_close(probes.frozen_statistics(net, x)(x), net.train()(x))
    assert net[1].running_mean is None


def test_frozen_statistics_of_a_net_with_dropout_leave_dropout_off():
    torch.manual_seed(15)
    net = models.mlp(widths=(6, 5), norm="bn", dropout=0.5, in_features=7, num_classes=3)
    x = torch.randn(8, 7)
    no_dropout = copy.deepcopy(net).train()
    for m in no_dropout.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    with torch.no_grad():
        torch.testing.assert_close(probes.frozen_statistics(net, x)(x), no_dropout(x))


class _Draws(nn.Module):
    """Draws from every global generator on each call (torch's only outside torch.func transforms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        np.random.rand()
        random.random()
        if not _under_torch_func(x):
            torch.rand(1)
        return x


@pytest.mark.parametrize("name", ["frozen_statistics", "layer_jacobians", "input_output_jacobian",
                                  "batch_jacobians", "jacobian_spectra"])
def test_probes_leave_the_random_states_untouched(name):
    torch.manual_seed(16)
    np.random.seed(16)
    random.seed(16)
    fn = getattr(probes, name)
    drawing = nn.Sequential(nn.Linear(4, 5), BatchNorm(5), _Draws(), nn.Tanh(), nn.Linear(5, 3))
    noisy = models.mlp(widths=(5, 4), norm="noisy_bn", in_features=4, num_classes=3)
    x = torch.randn(6, 4)
    rng = _rng_states()
    fn(drawing, x)
    _assert_same_rng(rng)
    if name in FROZEN_FUNCTIONS:
        with pytest.raises(ValueError, match="NoisyBatchNorm"):
            fn(noisy, x)
    else:
        first = fn(noisy, x)
        _assert_same_rng(rng)
        # the noise is drawn from a copy of the states: the same draw every time
        for (_, a), (_, c) in zip(first, fn(noisy, x)):
            assert torch.equal(a, c)
    _assert_same_rng(rng)
    assert noisy.training
