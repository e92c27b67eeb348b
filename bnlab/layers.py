"""Normalization layers written from tensor operations, and the registry ``mlp`` uses.

Every layer here takes (N, C) or (N, C, H, W) input (also (N, C, L)), as
``nn.BatchNorm1d``/``nn.BatchNorm2d`` do, and normalizes per channel C.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["BatchNorm", "make_norm", "NORM_KINDS", "norm_kinds"]


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions statistics are taken over: batch and, for images, space."""
    return (0,) + tuple(range(2, x.ndim))


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a (C,) vector against x: (1, C) or (1, C, 1, 1)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _check_input(x: torch.Tensor, num_features: int, layer: str) -> None:
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{layer} expects input of shape (N, C), (N, C, L) or (N, C, H, W); got {tuple(x.shape)}. "
            "Flatten images with nn.Flatten() before a layer on features, or pass 4-D conv activations."
        )
    if x.shape[1] != num_features:
        raise ValueError(
            f"{layer}({num_features}) got {x.shape[1]} channels in input of shape {tuple(x.shape)}: "
            f"the channel axis is dim 1 and must have {num_features} entries."
        )


class BatchNorm(nn.Module):
    """Batch normalization (Ioffe & Szegedy 2015, Algorithms 1 and 2) from tensor ops.

    Training mode normalizes with the batch mean and biased variance over every
    dimension but the channel one and updates the running statistics
    (running_var uses the unbiased m/(m-1) variance, as torch does); eval mode
    uses the running statistics. Same parameters, buffers and ``state_dict``
    keys as ``nn.BatchNorm1d``/``nn.BatchNorm2d``, so state dicts load either way.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance before the square root.
        momentum: weight of the new batch in the running average; ``None`` gives
            the cumulative (equal-weight) average, as in torch.
        affine: learn a per-channel scale gamma (``weight``) and shift beta (``bias``).

    Shapes: input (N, C) or (N, C, H, W) (or (N, C, L)); output the same.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def batch_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and biased variance of x, each of shape (C,)."""
        dims = _reduce_dims(x)
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        return mean, var

    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
            self.running_var.mul_(1 - f).add_(var.detach(), alpha=f * m / (m - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.num_features, type(self).__name__)
        shape = _channel_shape(x)
        if self.training:
            m = x.numel() // x.shape[1]
            if m < 2:
                raise ValueError(
                    f"Expected more than 1 value per channel when training, got input size {tuple(x.size())}: "
                    "batch statistics of a single value are undefined. Use a batch of at least 2, "
                    "or call model.eval() to use the running statistics."
                )
            mean, var = self.batch_statistics(x)
            self._update_running(mean, var, m)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        out = (x - mean.view(shape)) * scale.view(shape)
        if self.affine:
            out = out + self.bias.view(shape)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# --------------------------------------------------------------------------- the registry

def _group_norm(num_features: int, num_groups: int | None = None, **kw) -> nn.Module:
    groups = num_groups if num_groups is not None else math.gcd(num_features, 32)
    return nn.GroupNorm(groups, num_features, **kw)


NORM_KINDS: dict[str, Callable[..., nn.Module]] = {
    "bn": BatchNorm,
    "torch_bn": nn.BatchNorm1d,  # torch's own layer, for comparisons with "bn"
    "ln": lambda num_features, **kw: nn.LayerNorm(num_features, **kw),
    "gn": _group_norm,
}

# Kinds the course plans but that this version of bnlab does not provide yet.
_PLANNED: dict[str, str] = {}


def norm_kinds() -> list[str]:
    """Names accepted by ``make_norm`` and ``mlp(norm=...)``."""
    return sorted(NORM_KINDS)


def make_norm(kind: str, num_features: int, **kwargs) -> nn.Module:
    """Build the normalization layer named ``kind`` for ``num_features`` channels.

    Kinds: "bn" (bnlab.layers.BatchNorm), "torch_bn" (nn.BatchNorm1d), "ln"
    (nn.LayerNorm), "gn" (nn.GroupNorm, ``num_groups`` defaults to gcd(C, 32)), and
    the others listed by ``norm_kinds()``. Extra keyword arguments go to the layer.
    """
    if kind in NORM_KINDS:
        return NORM_KINDS[kind](num_features, **kwargs)
    if kind in _PLANNED:
        raise NotImplementedError(f"norm={kind!r} ({_PLANNED[kind]}) is not built yet in this version of bnlab.")
    raise ValueError(f"unknown norm kind {kind!r}: choose one of {norm_kinds()} or None.")
