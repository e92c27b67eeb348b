"""bnlab.models.lsuv (the well-scaled start) and mlp(init="he"|"xavier")."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnlab import models

TOL = 1e-3  # lsuv's default tolerance on every unit's mean and |std - 1|


def _batch(n: int = 200, seed: int = 0) -> torch.Tensor:
    # image-like inputs in [0, 1], with per-pixel means far from 0 like Fashion-MNIST
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) ** 2


def _preactivations(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=name: out.__setitem__(n, o.detach()))
             for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


@pytest.mark.parametrize("kwargs", [dict(init_std=0.01), dict(init_std=1.0), dict(activation="relu", init="he"),
                                    dict(widths=(50, 30, 20, 10, 10, 10, 10, 10), activation="relu", init_std=0.1)])
def test_every_hidden_preactivation_has_mean_0_std_1_on_the_batch(kwargs):
    torch.manual_seed(0)
    x = _batch()
    model = models.mlp(**{"widths": (64, 32, 16), **kwargs})
    before = _preactivations(model, x)
    assert models.lsuv(model, x) is model
    after = _preactivations(model, x)
    hidden = [n for n in after if n != "out"]
    assert hidden == [f"fc{k}" for k in range(1, len(hidden) + 1)]
    for name in hidden:
        z = after[name]
        assert z.mean(0).abs().max() < TOL, name
        assert (z.std(0, unbiased=False) - 1).abs().max() < TOL, name
    assert (before["fc1"].std(0, unbiased=False) - 1).abs().max() > 0.05  # it was not standardised before


def test_lsuv_leaves_a_plain_network_the_same_function_class():
    torch.manual_seed(0)
    model = models.mlp(init_std=0.1)
    kinds = [type(m) for m in model]
    out_weight = model.out.weight.detach().clone()
    models.lsuv(model, _batch())
    assert [type(m) for m in model] == kinds  # no layer added, in particular no normalization layer
    assert not any("Norm" in type(m).__name__ for m in model.modules())
    assert torch.equal(model.out.weight, out_weight)
    assert model.training  # the mode it had


def test_lsuv_is_a_per_unit_affine_rescaling_of_each_layer():
    torch.manual_seed(1)
    x = _batch()
    model = models.mlp(widths=(20, 20), init_std=0.05)
    z1 = _preactivations(model, x)["fc1"]
    w1 = model.fc1.weight.detach().clone()
    models.lsuv(model, x)
    mean, std = z1.double().mean(0), z1.double().std(0, unbiased=False)
    torch.testing.assert_close(model.fc1.weight.double(), w1.double() / std[:, None], rtol=1e-5, atol=0)
    torch.testing.assert_close(model.fc1.bias.double(), -mean / std, rtol=1e-4, atol=1e-6)


def test_layer_wide_form_fixes_one_scale_per_layer():
    torch.manual_seed(0)
    x = _batch()
    model = models.lsuv(models.mlp(widths=(40, 40), init_std=0.1), x, per_unit=False)
    for name, z in _preactivations(model, x).items():
        if name == "out":
            continue
        assert z.mean(0).abs().max() < TOL
        assert abs(float(z.double().pow(2).mean().sqrt()) - 1) < TOL
        assert float(z.std(0, unbiased=False).max() - z.std(0, unbiased=False).min()) > 0.05  # units differ


def test_without_centring_bias_free_networks_get_unit_variance():
    torch.manual_seed(0)
    x = torch.randn(300, 10)
    model = models.lsuv(models.deep_linear(depth=6, init_std=0.05), x, center=False)
    for name, z in _preactivations(model, x).items():
        if name != "fc6":
            assert (z.std(0, unbiased=False) - 1).abs().max() < TOL


def test_same_seed_same_model_and_training_works():
    x = _batch()
    torch.manual_seed(4)
    a = models.lsuv(models.mlp(init_std=0.01), x)
    torch.manual_seed(4)
    b = models.lsuv(models.mlp(init_std=0.01), x)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    a(x).sum().backward()
    assert all(p.grad is not None for p in a.parameters())


@pytest.mark.parametrize("model, x, kwargs, error, message", [
    (models.mlp(norm="bn"), _batch(), {}, ValueError, "has normalization layers"),
    (models.mlp(norm="ln"), _batch(), {}, ValueError, "build it with norm=None"),
    (models.mlp(norm="gn"), _batch(), {}, ValueError, "has normalization layers"),
    (models.mlp(norm="l2"), _batch(), {}, ValueError, "has normalization layers"),
    (models.mlp(norm="torch_bn"), _batch(), {}, ValueError, "has normalization layers"),
    (models.deep_linear(depth=3), torch.randn(20, 10), {}, ValueError, "pass center=False"),
    (models.mlp(), _batch(1), {}, ValueError, "at least 2 inputs"),
    (models.mlp(), _batch().long(), {}, TypeError, "floating-point tensor"),
    ("mlp", _batch(), {}, TypeError, "torch.nn.Module"),
    (models.mlp(), _batch(), dict(tol=0), ValueError, "tol must be a positive"),
    (models.mlp(), _batch(), dict(max_iter=0), ValueError, "max_iter must be an int >= 1"),
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), _batch(), {}, ValueError, "no hidden nn.Linear"),
])
def test_bad_arguments_say_what_is_wrong(model, x, kwargs, error, message):
    with pytest.raises(error, match=message):
        models.lsuv(model, x, **kwargs)


def test_constant_units_are_reported():
    model = models.mlp(widths=(8, 8), activation="relu", init_std=0.1)
    with torch.no_grad():
        model.fc1.weight[3] = 0.0
    x = _batch()
    with pytest.raises(ValueError, match=r"units \[3\] of layer 'fc1' are constant"):
        models.lsuv(model, x)


def test_unreachable_tolerance_is_an_error():
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="did not reach mean 0, std 1"):
        models.lsuv(models.mlp(init_std=0.1), _batch(), tol=1e-12, max_iter=1)


@pytest.mark.parametrize("init, std_of", [("he", lambda fi, fo: math.sqrt(2 / fi)),
                                          ("xavier", lambda fi, fo: math.sqrt(2 / (fi + fo)))])
def test_he_and_xavier_initialisation(init, std_of):
    torch.manual_seed(0)
    model = models.mlp(widths=(400, 300), init=init, activation="relu")
    for layer in (model.fc1, model.fc2, model.out):
        fo, fi = layer.weight.shape
        assert abs(float(layer.weight.detach().std()) / std_of(fi, fo) - 1) < 0.03
        assert abs(float(layer.weight.detach().mean())) < 0.1 * std_of(fi, fo)
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(init="kaiming_uniform"), "unknown init 'kaiming_uniform'"),
    (dict(init="he", init_std=0.1), "either init='he' or init_std=0.1"),
])
def test_bad_init_says_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.mlp(**kwargs)
