"""bnlab.layers.BatchNorm against nn.BatchNorm1d / nn.BatchNorm2d, and its one-node autograd function."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import layers, models, train
from bnlab.layers import BatchNorm, batchnorm_train
from bnlab.layers import batchnorm as batchnorm_module

SHAPES = [(8, 5), (2, 3), (4, 3, 7), (4, 3, 5, 5), (2, 1, 1, 1)]


def torch_layer(shape, **kw) -> nn.Module:
    cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    return cls(shape[1], **kw)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def random_affine(ours: nn.Module, ref: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w, b = torch.randn(ours.num_features, generator=g), torch.randn(ours.num_features, generator=g)
        for layer in (ours, ref):
            layer.weight.copy_(w)
            layer.bias.copy_(b)


@pytest.mark.parametrize("shape", SHAPES)
def test_train_mode_outputs_and_gradients_match_torch(shape):
    torch.manual_seed(0)
    ours, ref = BatchNorm(shape[1]), torch_layer(shape)
    random_affine(ours, ref, 1)
    x = (3 * torch.randn(shape) + 1).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    dout = torch.randn(shape)
    out, want = ours(x), ref(x2)
    close(out, want)
    out.backward(dout)
    want.backward(dout)
    close(x.grad, x2.grad)
    close(ours.weight.grad, ref.weight.grad)
    close(ours.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 3, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_stats_and_eval_match_torch_after_several_steps(shape, momentum):
    torch.manual_seed(1)
    ours, ref = BatchNorm(shape[1], momentum=momentum), torch_layer(shape, momentum=momentum)
    random_affine(ours, ref, 2)
    for step in range(6):
        x = 2 + (1 + step) * torch.randn(shape)
        close(ours(x), ref(x))
    close(ours.running_mean, ref.running_mean)
    close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 6
    ours.eval()
    ref.eval()
    x = torch.randn(shape).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    out, want = ours(x), ref(x2)
    close(out, want)
    dout = torch.randn(shape)
    out.backward(dout)
    want.backward(dout)
    close(x.grad, x2.grad)
    close(ours.weight.grad, ref.weight.grad)
    # eval mode leaves the running statistics alone
    close(ours.running_mean, ref.running_mean)
    assert int(ours.num_batches_tracked) == 6


@pytest.mark.parametrize("shape", [(8, 5), (3, 2, 4, 4)])
def test_affine_false_matches_torch(shape):
    torch.manual_seed(3)
    ours, ref = BatchNorm(shape[1], affine=False), torch_layer(shape, affine=False)
    assert ours.weight is None and ours.bias is None
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()] == []
    x = torch.randn(shape).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    dout = torch.randn(shape)
    out, want = ours(x), ref(x2)
    close(out, want)
    out.backward(dout)
    want.backward(dout)
    close(x.grad, x2.grad)
    close(ours.running_var, ref.running_var)


def test_state_dict_keys_and_loading_both_ways():
    torch.manual_seed(4)
    ours, ref = BatchNorm(6), nn.BatchNorm1d(6)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for _ in range(3):
        ours(torch.randn(10, 6) * 2 + 1)
    with torch.no_grad():
        ours.weight.mul_(3)
    fresh_ref = nn.BatchNorm1d(6)
    fresh_ref.load_state_dict(ours.state_dict())
    fresh_ref.eval()
    ours.eval()
    x = torch.randn(4, 6)
    close(fresh_ref(x), ours(x))
    for _ in range(2):
        ref(torch.randn(10, 6) - 3)
    fresh_ours = BatchNorm(6)
    fresh_ours.load_state_dict(ref.state_dict())
    assert int(fresh_ours.num_batches_tracked) == 2
    close(fresh_ours.eval()(x), ref.eval()(x))
    assert list(BatchNorm(6, affine=False).state_dict()) == list(nn.BatchNorm1d(6, affine=False).state_dict())


@pytest.mark.parametrize("shape", [(1, 4), (1, 3, 1, 1)])
def test_batch_of_one_value_per_channel_raises_like_torch(shape):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training") as ours:
        BatchNorm(shape[1])(torch.randn(shape))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch_layer(shape)(torch.randn(shape))
    assert "model.eval()" in str(ours.value)
    layer = BatchNorm(shape[1]).eval()  # eval mode: a single example is fine
    assert layer(torch.randn(shape)).shape == shape


def test_wrong_input_shapes_raise_value_error():
    with pytest.raises(ValueError, match="channels"):
        BatchNorm(4)(torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        BatchNorm(4)(torch.randn(4))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        BatchNorm(4)(torch.randn(2, 4, 2, 2, 2))


# --------------------------------------------------------------------------- the autograd function

@pytest.mark.parametrize("shape", [(2, 1), (7, 3), (3, 4, 6), (4, 3, 5, 5)])
def test_batchnorm_train_gradcheck_float64(shape):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(shape[1], generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(shape[1], generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda *a: batchnorm_train(*a, 1e-5)[0], (x, w, b))
    assert torch.autograd.gradgradcheck(lambda *a: batchnorm_train(*a, 1e-5)[0], (x, w, b))
    assert torch.autograd.gradcheck(lambda x: batchnorm_train(x, None, None, 1e-5)[0], (x,))


@pytest.mark.parametrize("shape", [(2, 1), (60, 100), (4, 3, 5, 5)])
def test_closed_form_backward_equals_autograd_of_plain_formula(shape):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1
    w, b = torch.randn(shape[1], generator=g, dtype=torch.float64), torch.randn(shape[1], generator=g, dtype=torch.float64)
    dout = torch.randn(shape, generator=g, dtype=torch.float64)
    grads = []
    for fn in (lambda *a: batchnorm_train(*a, 1e-5)[0], lambda *a: batchnorm_module._batchnorm_naive(*a, 1e-5)):
        inputs = [t.clone().requires_grad_(True) for t in (x, w, b)]
        out = fn(*inputs)
        out.backward(dout)
        grads.append([out.detach()] + [t.grad for t in inputs])
    for mine, ref in zip(*grads):
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-12)


def test_batchnorm_train_returns_batch_statistics():
    x = torch.randn(9, 4, 2, 2)
    _, mean, var = batchnorm_train(x, None, None, 1e-5)
    close(mean, x.mean(dim=(0, 2, 3)))
    close(var, x.var(dim=(0, 2, 3), unbiased=False))
    assert not mean.requires_grad and not var.requires_grad


def test_only_requested_gradients_are_computed():
    layer = BatchNorm(3)
    layer.weight.requires_grad_(False)
    x = torch.randn(5, 3, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None and x.grad is not None


# --------------------------------------------------------------------------- in a model

def test_mlp_with_bn_trains_exactly_like_mlp_with_torch_bn(small_fmnist):
    """Same seed → same initialisation, batches and losses with bnlab's layer and with torch's."""
    runs = {}
    for norm in ("bn", "torch_bn"):
        runs[norm] = train.fit(lambda: models.mlp(norm=norm, init_std=0.01), small_fmnist, steps=60, lr=0.5,
                               seed=3, eval_every=30, progress=False)
    bn, ref = runs["bn"], runs["torch_bn"]
    assert len(bn.train_loss) == len(ref.train_loss) == 60
    torch.testing.assert_close(torch.tensor(bn.train_loss), torch.tensor(ref.train_loss), rtol=1e-5, atol=1e-5)
    assert bn.train_loss[:10].mean() - bn.train_loss[-10:].mean() > 0.3  # it did train
    assert list(bn.test_acc) == pytest.approx(list(ref.test_acc), abs=1e-3)


@pytest.mark.parametrize("shape", [(8, 6), (5, 6, 3)])
def test_linear_then_batchnorm_gradients_match_torch(shape):
    """BN after a layer (not first): the gradient that BN passes down (dx) reaches the layer's weights
    and input, checked against nn.BatchNorm1d and by gradcheck, with a random (not all-ones) upstream
    gradient (with all ones, Σᵢ yᵢ = mβ is constant in x and any dx would pass)."""
    g = torch.Generator().manual_seed(8)
    u = torch.randn(shape[0], 4, *shape[2:], generator=g, dtype=torch.float64)
    if len(shape) == 3:
        u = u.transpose(1, 2)                      # (N, L, 4): the Linear acts on the last dim
    lin = nn.Linear(4, shape[1]).double()
    ours, ref = BatchNorm(shape[1]).double(), torch_layer(shape).double()
    random_affine(ours, ref, 9)
    dout = torch.randn(shape, generator=g, dtype=torch.float64)
    grads = []
    for bn in (ours, ref):
        lin.zero_grad()
        bn.zero_grad()
        ui = u.clone().requires_grad_(True)
        h = lin(ui)
        h = h.transpose(1, 2) if len(shape) == 3 else h
        bn(h).backward(dout)
        grads.append([ui.grad.clone(), lin.weight.grad.clone(), lin.bias.grad.clone(), bn.weight.grad.clone()])
    for mine, want in zip(*grads):
        close(mine, want, tol=1e-10)
    assert grads[0][0].abs().max() > 1e-3           # dx is checked on something non-zero ...
    assert grads[0][2].abs().max() < 1e-12          # ... and the bias before BN gets none

    def f(ui, w):
        h = ui @ w.T
        return batchnorm_train(h.transpose(1, 2) if len(shape) == 3 else h, ours.weight, ours.bias, 1e-5)[0]
    assert torch.autograd.gradcheck(f, (u.clone().requires_grad_(True), lin.weight.detach().clone().requires_grad_(True)))
