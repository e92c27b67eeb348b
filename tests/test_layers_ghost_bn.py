"""GhostBatchNorm: each virtual batch normalized by its own statistics (Hoffer et al. 2017)."""
from __future__ import annotations

import pytest
import torch

from bnlab import models
from bnlab.layers import BatchNorm, GhostBatchNorm, batchnorm_layers, recompute_population_statistics


@pytest.mark.parametrize("shape", [(12, 5), (8, 3, 4, 4)])
def test_each_ghost_batch_equals_batchnorm_on_it(shape):
    torch.manual_seed(0)
    v = 4
    ghost, ref = GhostBatchNorm(shape[1], virtual_batch_size=v), BatchNorm(shape[1])
    with torch.no_grad():
        for layer in (ghost, ref):
            layer.weight.copy_(torch.arange(1.0, shape[1] + 1))
            layer.bias.copy_(torch.linspace(-1, 1, shape[1]))
    x = (2 * torch.randn(shape) + 1).requires_grad_(True)
    dout = torch.randn(shape)
    out = ghost(x)
    out.backward(dout)
    chunks = [ref(x[i:i + v]) for i in range(0, shape[0], v)]
    want = torch.cat(chunks)
    torch.testing.assert_close(out, want)
    gx, gw, gb = x.grad.clone(), ghost.weight.grad.clone(), ghost.bias.grad.clone()
    x.grad = None
    want.backward(dout)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, ref.weight.grad)
    torch.testing.assert_close(gb, ref.bias.grad)
    # one running update with the ghost batches' mean statistics, unbiased by m/(m−1)
    per_channel = x.numel() // (shape[0] * shape[1])
    m = v * per_channel
    dims = (1,) + tuple(range(3, x.ndim + 1))
    xs = x.detach().reshape(shape[0] // v, v, *shape[1:])
    mean = xs.mean(dims).mean(0)
    var = xs.var(dims, unbiased=False).mean(0) * m / (m - 1)
    torch.testing.assert_close(ghost.running_mean, 0.1 * mean)
    torch.testing.assert_close(ghost.running_var, 0.9 + 0.1 * var)
    assert int(ghost.num_batches_tracked) == 1


def test_full_virtual_batch_is_batchnorm_and_eval_uses_running_statistics():
    torch.manual_seed(1)
    ghost, ref = GhostBatchNorm(3, virtual_batch_size=8), BatchNorm(3)
    x = torch.randn(8, 3)
    torch.testing.assert_close(ghost(x), ref(x))
    ghost.eval()
    ref.eval()
    torch.testing.assert_close(ghost(x[:3]), ref(x[:3]))


def test_in_mlp_and_population_statistics():
    model = models.mlp(norm="ghost_bn", norm_kwargs={"virtual_batch_size": 16})
    assert isinstance(model.norm1, GhostBatchNorm) and set(batchnorm_layers(model)) == {"norm1", "norm2", "norm3"}
    model(torch.randn(64, 784)).sum().backward()
    recompute_population_statistics(model, torch.randn(64, 784), batch_size=16)


def test_bad_batch_sizes():
    with pytest.raises(ValueError, match=">= 2"):
        GhostBatchNorm(3, virtual_batch_size=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        GhostBatchNorm(3, virtual_batch_size=4)(torch.randn(10, 3))
