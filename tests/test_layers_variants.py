"""The BN variants of notebook 09: forward, gradients, running statistics, registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import layers
from bnlab.layers import BatchNorm, make_norm, norm_kinds
from bnlab.layers.variants import (DetachedBatchNorm, FrozenBatchNorm, MeanOnlyBatchNorm, ReestimatedBatchNorm,
                                   ScaleOnlyBatchNorm, VARIANT_KINDS)
from bnlab.models import mlp

VARIANTS = [DetachedBatchNorm, FrozenBatchNorm, ReestimatedBatchNorm, MeanOnlyBatchNorm, ScaleOnlyBatchNorm]


def _affine(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.normal_()
    return layer


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 1).requires_grad_()


def test_registry_and_reexport():
    assert set(VARIANT_KINDS) <= set(norm_kinds())
    for kind, cls in VARIANT_KINDS.items():
        assert type(make_norm(kind, 7)) is cls
        assert getattr(layers, cls.__name__) is cls
    model = mlp(widths=(16, 16), norm="bn_reestimated", norm_kwargs={"every": 5})
    assert isinstance(model.norm1, ReestimatedBatchNorm) and model.norm1.every == 5
    assert model.fc1.bias is None and model(torch.rand(8, 784)).shape == (8, 10)
    with pytest.raises(AttributeError):
        layers.NoSuchLayer  # noqa: B018


@pytest.mark.parametrize("cls", VARIANTS)
def test_state_dict_loads_into_batchnorm(cls):
    variant = cls(4)
    with torch.no_grad():
        variant.weight.uniform_(0.5, 1.5)
        variant.running_mean.uniform_(-1, 1)
    bn = BatchNorm(4)
    bn.load_state_dict({k: v for k, v in variant.state_dict().items() if k in bn.state_dict()})   # strict
    for key, value in bn.state_dict().items():
        assert torch.equal(value, variant.state_dict()[key]), key
    for shape in [(6, 4), (6, 4, 3), (6, 4, 2, 2)]:
        assert cls(4)(torch.randn(*shape)).shape == shape


@pytest.mark.parametrize("cls", VARIANTS)
def test_clear_errors(cls):
    with pytest.raises(ValueError, match="channels"):
        cls(4)(torch.randn(5, 3))
    with pytest.raises(ValueError, match="more than 1 value"):
        cls(4)(torch.randn(1, 4))


def test_reestimated_rejects_bad_period():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="every"):
            ReestimatedBatchNorm(4, every=bad)


def test_detached_forward_and_running_stats_equal_batchnorm():
    torch.manual_seed(0)
    bn, det = _affine(BatchNorm(5).double()), DetachedBatchNorm(5).double()
    det.load_state_dict(bn.state_dict())
    for step in range(3):
        x = _x(32, 5, seed=step)
        assert torch.allclose(bn(x), det(x), atol=1e-12)
    assert torch.allclose(bn.running_mean, det.running_mean) and torch.allclose(bn.running_var, det.running_var)
    bn.eval(), det.eval()
    x = _x(8, 5, seed=9)
    assert torch.allclose(bn(x), det(x), atol=1e-12)


def test_detached_gradient_ignores_the_statistics():
    """∂ℓ/∂x = γ/√(σ²+ε) · ∂ℓ/∂y when μ_B and σ_B² are constants; BN's gradient is the projection of it."""
    det = _affine(DetachedBatchNorm(4).double())
    x = _x(16, 4)
    dout = torch.randn(16, 4, dtype=torch.float64)
    (dx,) = torch.autograd.grad(det(x), x, dout)
    var = x.detach().var(0, unbiased=False)
    expected = dout * det.weight.detach() / torch.sqrt(var + det.eps)
    assert torch.allclose(dx, expected, atol=1e-12)
    # BN's gradient sums to 0 over the batch; the detached one does not
    bn = BatchNorm(4).double()
    bn.load_state_dict(det.state_dict())
    (dx_bn,) = torch.autograd.grad(bn(x), x, dout)
    assert torch.allclose(dx_bn.sum(0), torch.zeros(4, dtype=torch.float64), atol=1e-10)
    assert dx.sum(0).abs().max() > 1e-3


def test_detached_mean_lets_a_bias_grow_without_changing_the_output():
    """Ioffe & Szegedy §2: x̂ = u + b − E[u + b] with E[·] outside the gradient: b moves, x̂ does not."""
    u, target = _x(20, 3, seed=1).detach(), torch.randn(20, 3, dtype=torch.float64)
    for detach, moves in ((True, True), (False, False)):
        b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        norm = MeanOnlyBatchNorm(3, affine=False, detach=detach).double()
        out0 = norm(u + b).detach()
        for _ in range(5):
            loss = ((norm(u + b) - target) ** 2).mean()
            (g,) = torch.autograd.grad(loss, b)
            with torch.no_grad():
                b -= 0.5 * g
        assert (b.abs().max() > 1e-3) == moves
        assert torch.allclose(norm(u + b), out0, atol=1e-12)


def test_mean_only_and_scale_only():
    x = _x(32, 6)
    mean, var = x.detach().mean(0), x.detach().var(0, unbiased=False)
    mo, so = _affine(MeanOnlyBatchNorm(6).double()), _affine(ScaleOnlyBatchNorm(6).double())
    assert torch.allclose(mo(x), (x - mean) * mo.weight + mo.bias, atol=1e-12)
    assert torch.allclose(so(x), x / torch.sqrt(var + so.eps) * so.weight + so.bias, atol=1e-12)
    # gradients through the statistics equal autograd through the formula
    for layer, f in ((mo, lambda t: (t - t.mean(0)) * mo.weight + mo.bias),
                     (so, lambda t: t / torch.sqrt(t.var(0, unbiased=False) + so.eps) * so.weight + so.bias)):
        dout = torch.randn(32, 6, dtype=torch.float64)
        (a,) = torch.autograd.grad(layer(x), x, dout)
        (b,) = torch.autograd.grad(f(x), x, dout)
        assert torch.allclose(a, b, atol=1e-12)
    # eval: running statistics for the same operations
    mo.eval(), so.eval()
    y = _x(4, 6, seed=3)
    assert torch.allclose(mo(y), (y - mo.running_mean) * mo.weight + mo.bias, atol=1e-12)
    assert torch.allclose(so(y), y / torch.sqrt(so.running_var + so.eps) * so.weight + so.bias, atol=1e-12)


def test_frozen_equals_batchnorm_on_the_first_batch_then_stays_fixed():
    bn, fr = _affine(BatchNorm(5).double()), FrozenBatchNorm(5).double()
    fr.load_state_dict(bn.state_dict(), strict=False)
    x0 = _x(40, 5, seed=0)
    assert torch.allclose(bn(x0), fr(x0), atol=1e-12)
    mean0, var0 = x0.detach().mean(0), x0.detach().var(0, unbiased=False)
    for step in range(1, 4):
        x = _x(40, 5, seed=step) * (step + 1)   # new batches with other statistics
        expected = (x - mean0) / torch.sqrt(var0 + fr.eps) * fr.weight + fr.bias
        assert torch.allclose(fr(x), expected, atol=1e-12)
    fr.eval()
    assert torch.allclose(fr(x), expected, atol=1e-12)  # eval computes the same fixed map
    # no gradient through the statistics: dx = γ/σ₀ · dout
    (dx,) = torch.autograd.grad(fr.train()(x), x, torch.ones_like(x))
    assert torch.allclose(dx, (fr.weight / torch.sqrt(var0 + fr.eps)).detach().expand_as(dx), atol=1e-12)


def test_reestimated_refreshes_every_k_steps_from_the_moving_average():
    layer = ReestimatedBatchNorm(3, every=3, momentum=0.5).double()
    ema_m, ema_v, used = None, None, None
    for t in range(7):
        x = _x(30, 3, seed=t) * (1 + t)
        m, v = x.detach().mean(0), x.detach().var(0, unbiased=False)
        ema_m, ema_v = (m, v) if t == 0 else (0.5 * ema_m + 0.5 * m, 0.5 * ema_v + 0.5 * v)
        if t % 3 == 0:
            used = (ema_m.clone(), ema_v.clone())
        out = layer(x)
        assert torch.allclose(out, (x - used[0]) / torch.sqrt(used[1] + layer.eps), atol=1e-10), t
    assert int(layer.num_batches_tracked) == 7


def test_double_backward_through_variants():
    """Hessian-vector products exist (and are symmetric) for every variant in an MLP."""
    for kind in VARIANT_KINDS:
        torch.manual_seed(0)
        model = mlp(widths=(6, 5), norm=kind, in_features=4, num_classes=3).double()
        x, y = torch.randn(12, 4, dtype=torch.float64), torch.arange(12) % 3
        model(x)  # first call: frozen statistics are taken here
        ps = list(model.parameters())
        loss = nn.functional.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, ps, create_graph=True)
        u = [torch.randn_like(p) for p in ps]
        w = [torch.randn_like(p) for p in ps]
        hu = torch.autograd.grad(g, ps, u, retain_graph=True, allow_unused=True)
        hw = torch.autograd.grad(g, ps, w, retain_graph=True, allow_unused=True)
        dot = lambda a, b: sum(float((s * t).sum()) for s, t in zip(a, b) if s is not None and t is not None)
        assert abs(dot(w, hu) - dot(u, hw)) < 1e-8 * (1 + abs(dot(w, hu))), kind
