"""bnlab.models.mlp: shapes, layer order, the bias rule, initialisation, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import models
from bnlab.layers import BatchNorm


def _kinds(model: nn.Sequential) -> list[str]:
    return [type(m).__name__ for m in model]


def test_default_is_the_papers_784_100_100_100_10_sigmoid_mlp():
    model = models.mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 100), (100, 100), (100, 100), (100, 10)]
    assert _kinds(model) == ["Flatten"] + ["Linear", "Sigmoid"] * 3 + ["Linear"]
    assert all(m.bias is not None for m in linears)
    out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)


def test_norm_before_activation_drops_the_bias():
    model = models.mlp(widths=(32, 16), norm="bn", activation="relu")
    assert _kinds(model) == ["Flatten", "Linear", "BatchNorm", "ReLU", "Linear", "BatchNorm", "ReLU", "Linear"]
    assert model.fc1.bias is None and model.fc2.bias is None
    assert model.out.bias is not None  # the output layer is not followed by a norm
    assert isinstance(model.norm1, BatchNorm) and model.norm1.num_features == 32


def test_norm_after_activation_keeps_the_bias():
    model = models.mlp(widths=(32,), norm="bn", placement="after", activation="tanh")
    assert _kinds(model) == ["Flatten", "Linear", "Tanh", "BatchNorm", "Linear"]
    assert model.fc1.bias is not None


@pytest.mark.parametrize("kind", ["torch_bn", "ln", "gn"])
def test_other_norm_kinds_build_and_run(kind):
    model = models.mlp(widths=(64, 64), norm=kind)
    assert model.fc1.bias is None
    assert model(torch.rand(8, 784)).shape == (8, 10)


def test_init_std_sets_gaussian_weights_and_zero_bias():
    torch.manual_seed(0)
    model = models.mlp(widths=(400, 400), init_std=0.01)
    w = model.fc2.weight.detach()
    assert abs(float(w.std()) - 0.01) < 5e-4 and abs(float(w.mean())) < 5e-4
    assert torch.count_nonzero(model.fc1.bias) == 0 and torch.count_nonzero(model.out.bias) == 0


def test_default_init_is_pytorchs():
    torch.manual_seed(0)
    w = models.mlp(widths=(100,)).fc1.weight.detach()
    bound = 1 / 784 ** 0.5  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(w.abs().max()) <= bound
    assert float(w.std()) > 0.5 * bound / 3 ** 0.5


def test_same_seed_same_model():
    torch.manual_seed(3)
    a = models.mlp(norm="bn", init_std=0.1)
    torch.manual_seed(3)
    b = models.mlp(norm="bn", init_std=0.1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kwargs, message", [
    (dict(activation="swish"), "unknown activation 'swish'"),
    (dict(norm="batchnorm"), "unknown norm kind 'batchnorm'"),
    (dict(placement="middle"), "placement must be 'before' or 'after'"),
    (dict(widths=()), "widths must be a non-empty"),
    (dict(init_std=0.0), "init_std must be positive"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.mlp(**kwargs)


def test_wrong_input_width_is_a_clear_error():
    model = models.mlp(in_features=784)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        model(torch.rand(4, 3, 32, 32))


def test_noise_control_keeps_the_bias_it_does_not_centre():
    model = models.mlp(widths=(16,), norm="noise")
    assert model.fc1.bias is not None


def test_bias_option_keeps_or_drops_the_hidden_bias():
    kept = models.mlp(widths=(8, 8), norm="bn", bias=True)
    assert kept.fc1.bias is not None and kept.fc2.bias is not None
    dropped = models.mlp(widths=(8,), bias=False)
    assert dropped.fc1.bias is None and dropped.out.bias is not None
    assert models.mlp(widths=(8,), norm="bn").fc1.bias is None  # None: the automatic rule
    with pytest.raises(ValueError, match="bias must be"):
        models.mlp(bias="yes")


def test_affine_false_bn_has_no_gamma_beta():
    model = models.mlp(widths=(8,), norm="bn", norm_kwargs={"affine": False})
    assert model.norm1.weight is None and model.norm1.bias is None
    assert model(torch.rand(4, 784)).shape == (4, 10)


def test_remove_bias_keeps_the_weights_and_with_bn_the_output():
    torch.manual_seed(0)
    biased = models.mlp(widths=(8, 8), norm="bn", bias=True)
    with torch.no_grad():
        biased.fc1.bias.uniform_(-3, 3)
    x = torch.rand(16, 784)
    before = biased(x)
    w1 = biased.fc1.weight.clone()
    twin = models.remove_bias(biased)
    assert twin.fc1.bias is None and twin.fc2.bias is None and twin.out.bias is not None
    assert torch.equal(twin.fc1.weight, w1)
    torch.testing.assert_close(twin(x), before, rtol=0, atol=1e-5)  # BN's centring cancelled the bias
    with pytest.raises(ValueError, match="not Linear layers"):
        models.remove_bias(twin, layers=["norm1"])
def test_mlp_dropout_layers_and_modes():
    torch.manual_seed(0)
    model = models.mlp(norm="bn", activation="relu", dropout=0.5)
    names = [n for n, _ in model.named_children()]
    assert names == ["flatten", "fc1", "norm1", "act1", "drop1", "fc2", "norm2", "act2", "drop2",
                     "fc3", "norm3", "act3", "drop3", "out"]
    assert all(model.get_submodule(f"drop{k}").p == 0.5 for k in (1, 2, 3))
    last = models.mlp(activation="relu", dropout=0.2, dropout_layers=[3])
    assert [n for n, _ in last.named_children() if n.startswith("drop")] == ["drop3"]
    # training mode drops about half of the units and scales the rest by 2; eval mode is the identity
    h = torch.ones(1000, 100)
    out = model.drop1(h)
    assert abs((out == 0).float().mean().item() - 0.5) < 0.05 and set(out.unique().tolist()) == {0.0, 2.0}
    model.eval()
    assert torch.equal(model.drop1(h), h)
    assert [n for n, _ in models.mlp().named_children()] == ["flatten", "fc1", "act1", "fc2", "act2",
                                                              "fc3", "act3", "out"]
    with pytest.raises(ValueError, match="drop probability"):
        models.mlp(dropout=1.0)
    with pytest.raises(ValueError, match="dropout_layers"):
        models.mlp(dropout=0.5, dropout_layers=[4])
