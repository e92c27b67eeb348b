"""NoisyBatchNorm, NoiseInjection and LpNorm: the layers of notebooks 04 and 05."""
from __future__ import annotations

import math

import pytest
import torch

from bnlab.layers import BatchNorm, LpNorm, NoiseInjection, NoisyBatchNorm, algorithm1_noise, make_norm
from bnlab.models import mlp


# ------------------------------------------------------------------ Algorithm 1 noise

def test_noise_statistics_match_algorithm1():
    """Per step: one μ_j ~ U(-.5, .5), σ_j ~ U(1, 1.25) per unit; per sample m ~ U(μ_j ± .1), s ~ N(σ_j, .1²)."""
    torch.manual_seed(0)
    n, c, draws = 4000, 8, 200
    mus, sigmas = [], []
    for _ in range(draws):
        s, m = algorithm1_noise(torch.zeros(n, c, dtype=torch.float64))
        assert s.shape == m.shape == (n, c)
        # within a unit, m spans exactly a width-0.2 window around its μ_j
        spread = m.amax(0) - m.amin(0)
        assert torch.all(spread <= 0.2 + 1e-12) and torch.all(spread > 0.19)
        mu = (m.amax(0) + m.amin(0)) / 2  # centre of the window: μ_j up to ~1e-4
        mus.append(mu)
        # s: mean σ_j, standard deviation 0.1 per unit
        sigmas.append(s.mean(0))
        assert torch.allclose(s.std(0), torch.full((c,), 0.1, dtype=torch.float64), atol=0.01)
        # the jitter of m is uniform: variance 0.2²/12
        assert torch.allclose(m.var(0), torch.full((c,), 0.04 / 12, dtype=torch.float64), rtol=0.1)
    mus, sigmas = torch.cat(mus), torch.cat(sigmas)
    assert mus.min() >= -0.5 - 1e-3 and mus.max() <= 0.5 + 1e-3
    assert sigmas.min() >= 1 - 0.01 and sigmas.max() <= 1.25 + 0.01
    # U(-0.5, 0.5): mean 0, variance 1/12; U(1, 1.25): mean 1.125, variance 0.25²/12
    assert abs(float(mus.mean())) < 0.03 and abs(float(mus.var()) - 1 / 12) < 0.01
    assert abs(float(sigmas.mean()) - 1.125) < 0.01 and abs(float(sigmas.var()) - 0.0625 / 12) < 0.001


def test_noise_magnitudes_are_configurable_and_checked():
    torch.manual_seed(0)
    s, m = algorithm1_noise(torch.zeros(1000, 3), mean_range=2.0, scale_range=(3.0, 3.0), mean_jitter=0.0,
                            scale_jitter=0.0)
    assert torch.all(s == 3.0)
    assert torch.all(m == m[0]) and m.abs().max() <= 2.0 and m.abs().max() > 0.05
    with pytest.raises(ValueError, match="scale_range"):
        NoisyBatchNorm(4, scale_range=(1.25, 1.0))
    with pytest.raises(ValueError, match=">= 0"):
        NoiseInjection(4, mean_jitter=-0.1)


def test_conv_noise_treats_space_as_batch():
    torch.manual_seed(0)
    s, m = algorithm1_noise(torch.zeros(6, 3, 5, 5))
    assert s.shape == m.shape == (6, 3, 5, 5)
    per_channel = m.transpose(0, 1).reshape(3, -1)
    # one μ_j per channel, jitter per (sample, position)
    assert torch.all(per_channel.amax(1) - per_channel.amin(1) <= 0.2 + 1e-6)
    assert not torch.allclose(m[0, 0, 0, 0], m[0, 0, 1, 1])


# ------------------------------------------------------------------ NoisyBatchNorm

@pytest.mark.parametrize("shape", [(32, 5), (8, 5, 4, 4)])
def test_noisy_bn_is_bn_plus_algorithm1_noise(shape):
    torch.manual_seed(1)
    x = torch.randn(*shape) * 3 + 2
    noisy, bn = NoisyBatchNorm(5), BatchNorm(5)
    with torch.no_grad():
        noisy.weight.uniform_(0.5, 2)
        noisy.bias.normal_()
    bn.load_state_dict(noisy.state_dict())
    torch.manual_seed(7)
    out = noisy(x)
    y = bn(x)
    torch.manual_seed(7)
    s, m = algorithm1_noise(y)
    torch.testing.assert_close(out, s * y + m)
    # the noise is fresh at every step, and running statistics are the input's, as in BN
    assert not torch.allclose(noisy(x), out)
    bn(x)
    torch.testing.assert_close(noisy.running_mean, bn.running_mean)
    torch.testing.assert_close(noisy.running_var, bn.running_var)


@pytest.mark.parametrize("shape", [(32, 5), (8, 5, 4, 4)])
def test_noisy_bn_eval_is_deterministic_bn(shape):
    torch.manual_seed(2)
    noisy, bn = NoisyBatchNorm(5), BatchNorm(5)
    for _ in range(3):
        x = torch.randn(*shape)
        noisy(x)
        bn(x)
    noisy.eval(), bn.eval()
    x = torch.randn(*shape)
    a, b = noisy(x), noisy(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, bn(x))


@pytest.mark.parametrize("kind", ["noisy_bn", "noise", "l1", "l2", "linf"])
@pytest.mark.parametrize("shape", [(16, 6), (4, 6, 3, 3)])
def test_gradients_flow(kind, shape):
    torch.manual_seed(3)
    layer = make_norm(kind, 6).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    assert out.shape == x.shape
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------ NoiseInjection

def test_noise_injection_is_plain_in_eval_and_noisy_in_training():
    torch.manual_seed(4)
    layer = NoiseInjection(5, bias=True)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(64, 5)
    layer.eval()
    torch.testing.assert_close(layer(x), x + layer.bias)
    layer.train()
    torch.manual_seed(5)
    out = layer(x)
    torch.manual_seed(5)
    s, m = algorithm1_noise(x)
    torch.testing.assert_close(out, s * (x + layer.bias) + m)
    quiet = NoiseInjection(5, mean_range=0.0, scale_range=(1.0, 1.0), mean_jitter=0.0, scale_jitter=0.0)
    torch.testing.assert_close(quiet(x), x)
    assert list(NoiseInjection(5).parameters()) == []


def test_mlp_noise_is_the_plain_net_in_eval_mode():
    torch.manual_seed(6)
    noisy = mlp((20, 20), norm="noise", in_features=12)
    plain = mlp((20, 20), norm=None, in_features=12)
    assert list(noisy.state_dict()) == list(plain.state_dict())  # the same parameters, no more
    plain.load_state_dict(noisy.state_dict())
    x = torch.randn(10, 12)
    noisy.eval(), plain.eval()
    torch.testing.assert_close(noisy(x), plain(x))
    noisy.train()
    assert not torch.allclose(noisy(x), plain(x))


# ------------------------------------------------------------------ LpNorm

def _reference_lp(x: torch.Tensor, p: float, eps: float = 1e-5) -> torch.Tensor:
    """The docstring's definition, written out for (N, C) input."""
    centred = x - x.mean(0)
    if p == math.inf:
        nu_j = centred.abs().max(0).values
    else:
        nu_j = (centred.abs() ** p).mean(0) ** (1 / p)
    return centred / (nu_j.mean() + eps)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_lpnorm_matches_its_definition(p):
    torch.manual_seed(8)
    x = torch.randn(40, 7, dtype=torch.float64) * torch.linspace(0.5, 4, 7, dtype=torch.float64) + 3
    layer = LpNorm(7, p=p).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2)
        layer.bias.normal_()
    torch.testing.assert_close(layer(x), _reference_lp(x, p) * layer.weight + layer.bias)
    # images: every spatial position is a sample
    img = torch.randn(3, 7, 4, 5, dtype=torch.float64)
    flat = img.permute(0, 2, 3, 1).reshape(-1, 7)
    expect = (_reference_lp(flat, p) * layer.weight + layer.bias).reshape(3, 4, 5, 7).permute(0, 3, 1, 2)
    torch.testing.assert_close(layer(img), expect)


def test_l2_differs_from_batch_norm():
    """With units of different scales ℓ2 keeps their ratio; BN makes every unit unit-variance."""
    torch.manual_seed(9)
    x = torch.randn(200, 4) * torch.tensor([0.5, 1.0, 2.0, 4.0])
    l2, bn = LpNorm(4, p=2), BatchNorm(4)
    a, b = l2(x), bn(x)
    assert (a - b).abs().max() > 0.5
    stds = a.std(0, unbiased=False)
    torch.testing.assert_close(stds / stds[0], x.std(0, unbiased=False) / x.std(0, unbiased=False)[0])
    torch.testing.assert_close(b.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    # ...and when every unit has the same spread, ℓ2 and BN agree (the definitions touch there)
    z = (x - x.mean(0)) / x.std(0, unbiased=False)
    torch.testing.assert_close(LpNorm(4, p=2)(z), BatchNorm(4)(z), atol=1e-4, rtol=0)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_lpnorm_running_statistics_and_eval(p):
    torch.manual_seed(10)
    layer = LpNorm(3, p=p, momentum=0.5)
    batches = [torch.randn(30, 3) * 2 + 1 for _ in range(3)]
    mean, scale = torch.zeros(3), torch.ones(1)
    for xb in batches:
        layer(xb)
        bm, bs = layer.batch_statistics(xb)
        mean, scale = 0.5 * mean + 0.5 * bm, 0.5 * scale + 0.5 * bs
    torch.testing.assert_close(layer.running_mean, mean)
    torch.testing.assert_close(layer.running_scale, scale)
    layer.eval()
    x = torch.randn(5, 3)
    torch.testing.assert_close(layer(x), (x - mean) / (scale + layer.eps))
    torch.testing.assert_close(layer(x[:1]), layer(x)[:1])  # eval works on one example
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_scale"}


def test_lpnorm_rejects_bad_input():
    with pytest.raises(ValueError, match="p must be 1, 2 or math.inf"):
        LpNorm(3, p=3)
    with pytest.raises(ValueError, match="at least 2"):
        LpNorm(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="channels"):
        LpNorm(3)(torch.randn(4, 5))


@pytest.mark.parametrize("kind", ["noisy_bn", "noise", "l1", "l2", "linf"])
def test_mlp_builds_and_trains_every_kind(kind):
    torch.manual_seed(11)
    model = mlp((16, 16), activation="relu", norm=kind, init_std=0.3, in_features=10, num_classes=3)
    x, y = torch.randn(60, 10), torch.randint(0, 3, (60,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(x), y).item()
        model.train()
        return loss

    before = eval_loss()
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.9 * before


def test_drifting_bn_adds_an_offset_that_grows_with_training_steps():
    from bnlab.layers import DriftingBatchNorm, make_norm
    torch.manual_seed(0)
    layer = make_norm("drift_bn", 4, rate=0.5)
    assert isinstance(layer, DriftingBatchNorm)
    plain = BatchNorm(4)
    x = torch.randn(32, 4)
    for t in (1, 2, 3):  # training mode: t advances, the offset is rate * t * direction
        torch.testing.assert_close(layer(x), plain(x) + 0.5 * t * layer.direction)
    assert int(layer.t) == 3
    layer.eval(), plain.eval()
    torch.testing.assert_close(layer(x), plain(x) + 1.5 * layer.direction)  # eval: current offset, t unchanged
    assert int(layer.t) == 3 and "t" in layer.state_dict() and "direction" in layer.state_dict()
    torch.manual_seed(0)
    assert torch.equal(make_norm("drift_bn", 4).direction, layer.direction)  # the seed fixes the directions
    with pytest.raises(ValueError, match="rate must be a finite number >= 0"):
        DriftingBatchNorm(4, rate=-1.0)
