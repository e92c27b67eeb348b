"""Parity: the same scenario through ``bnlab.layers.BatchNorm`` and ``nn.BatchNorm1d/2d``.

Wherever torch's layer works, ours gives the same result within the dtype's
tolerance; wherever torch's refuses, ours refuses too, with a message that names
the layer and the fix.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from bnlab import models
from bnlab.layers import BatchNorm


def torch_layer(shape, **kw) -> nn.Module:
    cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    return cls(shape[1], **kw)


def pair(shape, seed: int = 0, **kw) -> tuple[nn.Module, nn.Module]:
    """Our layer and torch's, with the same random γ and β."""
    ours, ref = BatchNorm(shape[1], **kw), torch_layer(shape, **kw)
    if ours.affine:
        g = torch.Generator().manual_seed(seed)
        w, b = 1 + torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
        with torch.no_grad():
            for layer in (ours, ref):
                layer.weight.copy_(w)
                layer.bias.copy_(b)
    return ours, ref


# --------------------------------------------------------------------------- second order

SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(("input", "weight", "bias"), r)]


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 4)])
@pytest.mark.parametrize("needs", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_double_backward_with_any_subset_requiring_grad(shape, needs):
    """∂/∂(everything that needs it) of ⟨∇ loss, v⟩: a Hessian-vector product through BN."""
    torch.manual_seed(0)
    results = []
    for layer in pair(shape, seed=1):
        layer.double()
        layer.weight.requires_grad_("weight" in needs)
        layer.bias.requires_grad_("bias" in needs)
        x = (torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 + 1)
        x.requires_grad_("input" in needs)
        target = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        inputs = [t for t, name in ((x, "input"), (layer.weight, "weight"), (layer.bias, "bias")) if name in needs]
        loss = ((layer(x) - target) ** 3).sum()  # cubic: the Hessian depends on the output too
        grads = torch.autograd.grad(loss, inputs, create_graph=True)
        v = [torch.ones_like(g) for g in grads]
        results.append(torch.autograd.grad(grads, inputs, v, allow_unused=True))
    for mine, ref in zip(*results):
        if ref is None:
            assert mine is None or torch.count_nonzero(mine) == 0
        else:
            torch.testing.assert_close(mine, ref, rtol=1e-9, atol=1e-9)


def _hvp(norm: str, frozen: tuple[str, ...]) -> list[torch.Tensor]:
    """Hessian-vector product of an mlp's cross-entropy w.r.t. its trainable parameters."""
    torch.manual_seed(0)
    model = models.mlp(widths=(16, 16), norm=norm, in_features=12).double()
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 12, dtype=torch.float64, generator=g), torch.randint(0, 10, (20,), generator=g)
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, dtype=p.dtype, generator=g) for p in params]
    return list(torch.autograd.grad(grads, params, v))


@pytest.mark.parametrize("frozen", [("fc1",), ("norm1", "norm2"), ("fc1", "norm1"), ()],
                         ids=["fc1 frozen", "gamma-beta frozen", "fc1 and norm1 frozen", "none frozen"])
def test_hessian_vector_product_of_mlp_bn_equals_torch_bn(frozen):
    """What a curvature probe computes, with frozen layers: BN's input or γ, β without grad."""
    mine, ref = _hvp("bn", frozen), _hvp("torch_bn", frozen)
    assert len(mine) == len(ref) > 0
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
