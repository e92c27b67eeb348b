"""bnlab.layers.LayerNorm and GroupNorm against nn.LayerNorm / nn.GroupNorm, and as mlp(norm=...)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import models
from bnlab.layers import GroupNorm, LayerNorm


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def random_params(ours: nn.Module, ref: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for (name, p), (name2, q) in zip(ours.named_parameters(), ref.named_parameters()):
            assert name == name2
            v = torch.randn(p.shape, generator=g)
            p.copy_(v)
            q.copy_(v)


def compare(ours: nn.Module, ref: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
    """Outputs and gradients in float64 (groups of two values make float32 gradients cancel to
    ~1e-4, where rounding differs), both modes, and state dicts that load either way."""
    random_params(ours, ref, seed + 1)
    ours.double()
    ref.double()
    g = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(shape, generator=g, dtype=torch.float64) + 1).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    dout = torch.randn(shape, generator=g, dtype=torch.float64)
    for mode in ("train", "eval"):
        ours.train(mode == "train")
        ref.train(mode == "train")
        out, want = ours(x), ref(x2)
        close(out, want, 1e-10)
        out.backward(dout)
        want.backward(dout)
        close(x.grad, x2.grad, 1e-10)
        for (_, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
            close(p.grad, q.grad, 1e-10)
        x.grad = x2.grad = None
        ours.zero_grad()
        ref.zero_grad()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    ours.load_state_dict(ref.state_dict())


@pytest.mark.parametrize("shape,normalized", [((8, 5), 5), ((1, 7), 7), ((4, 3, 6), 6), ((2, 3, 4, 4), (3, 4, 4))])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_layernorm_matches_torch(shape, normalized, affine, bias):
    compare(LayerNorm(normalized, elementwise_affine=affine, bias=bias),
            nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias), shape)


@pytest.mark.parametrize("shape,groups", [((8, 6), 3), ((1, 6), 2), ((4, 6), 1), ((4, 6), 6), ((3, 4, 5), 2),
                                          ((2, 8, 3, 3), 4)])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_matches_torch(shape, groups, affine):
    compare(GroupNorm(groups, shape[1], affine=affine), nn.GroupNorm(groups, shape[1], affine=affine), shape)


def test_groupnorm_one_group_is_layernorm_and_c_groups_normalize_each_channel():
    x = torch.randn(5, 6)
    close(GroupNorm(1, 6)(x), LayerNorm(6)(x))
    x4 = torch.randn(2, 3, 4, 4)
    want = (x4 - x4.mean((2, 3), keepdim=True)) / torch.sqrt(x4.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    close(GroupNorm(3, 3)(x4), want)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="divide num_channels"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="channels are dim 1"):
        GroupNorm(2, 6)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="last 1 dimension"):
        LayerNorm(5)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(0)


@pytest.mark.parametrize("kind,cls", [("ln", LayerNorm), ("gn", GroupNorm)])
def test_mlp_uses_bnlab_layers_and_matches_torch_layers(kind, cls):
    torch.manual_seed(0)
    ours = models.mlp(norm=kind, activation="relu")
    norms = [m for m in ours.modules() if isinstance(m, cls)]
    assert len(norms) == 3
    ref = models.mlp(norm=kind, activation="relu")
    for name, module in list(ref.named_children()):
        if isinstance(module, cls):
            torch_layer = (nn.LayerNorm(100) if kind == "ln" else nn.GroupNorm(module.num_groups, 100))
            setattr(ref, name, torch_layer)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 1, 28, 28)
    close(ours(x), ref(x))
    # a batch of one works (no batch statistics)
    assert ours(x[:1]).shape == (1, 10)
