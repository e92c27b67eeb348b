"""Controls for notebook 04: Santurkar et al.'s (2018) noisy BN, the same noise without BN, and a drifting BN.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bnlab.layers._common import _channel_shape, _check_float, _check_input, _check_settings
from bnlab.layers.batchnorm import BatchNorm

__all__ = ["NoisyBatchNorm", "NoiseInjection", "DriftingBatchNorm", "algorithm1_noise"]


def algorithm1_noise(x: torch.Tensor, mean_range: float = 0.5, scale_range: tuple[float, float] = (1.0, 1.25),
                     mean_jitter: float = 0.1, scale_jitter: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the multiplicative and additive noise of Santurkar et al. (2018), Algorithm 1.

    For each unit (channel) j: μ_j ~ U(−mean_range, mean_range) and
    σ_j ~ U(scale_range). Then for each sample i (and, for images, each spatial
    position, which counts as a sample) and unit j: m_ij ~ U(μ_j − mean_jitter,
    μ_j + mean_jitter) and s_ij ~ N(σ_j, scale_jitter²). The noisy
    activation is ``s * x + m``. Draws from torch's global RNG, so ``fit``'s seed fixes them.

    Args:
        x: (N, C) or (N, C, H, W) (or (N, C, L)); only its shape, dtype and device are used.

    Returns:
        (s, m), each the shape of x.

    Raises:
        TypeError: ``x`` not a floating-point tensor; ``scale_range`` not iterable; a noise magnitude
            that is not a number.
        ValueError: a negative ``mean_range``, ``mean_jitter`` or ``scale_jitter``; ``scale_range`` not
            two values, or with high < low.
        IndexError: ``x`` with fewer than 2 dimensions.
    """
    _check_float(x, "algorithm1_noise")
    if mean_range < 0 or mean_jitter < 0 or scale_jitter < 0:
        raise ValueError(f"noise magnitudes must be >= 0, got mean_range={mean_range}, "
                         f"mean_jitter={mean_jitter}, scale_jitter={scale_jitter}")
    lo, hi = scale_range
    if hi < lo:
        raise ValueError(f"scale_range must be (low, high) with low <= high, got {scale_range}")
    shape = _channel_shape(x)
    kw = dict(dtype=x.dtype, device=x.device)
    mu = (torch.rand(shape, **kw) * 2 - 1) * mean_range
    sigma = lo + torch.rand(shape, **kw) * (hi - lo)
    m = mu + (torch.rand(x.shape, **kw) * 2 - 1) * mean_jitter
    s = sigma + torch.randn(x.shape, **kw) * scale_jitter
    return s, m


def _noise_settings(num_features: int, mean_range: float, scale_range: tuple[float, float],
                    mean_jitter: float, scale_jitter: float) -> dict:
    """The noise magnitudes of a noisy layer, validated once by drawing a sample."""
    noise = dict(mean_range=mean_range, scale_range=tuple(scale_range), mean_jitter=mean_jitter,
                 scale_jitter=scale_jitter)
    algorithm1_noise(torch.zeros(2, num_features), **noise)  # raises on bad magnitudes now, not mid-training
    return noise


def _noise_repr(noise: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in noise.items())


class NoisyBatchNorm(BatchNorm):
    """Batch norm followed by time-varying noise (Santurkar et al. 2018, Algorithm 1).

    In training mode the output of batch norm (after γ and β), y, becomes
    ``s * y + m`` with fresh noise at every call (see ``algorithm1_noise``): a
    random non-zero mean and non-unit scale per unit that change every step,
    plus per-sample jitter. The layer's output distribution therefore shifts
    *more* than a plain network's, by design. Eval mode adds no noise and is
    exactly ``BatchNorm`` with running statistics. Running statistics are those
    of the input (the noise comes after normalization and does not enter them).

    Args:
        num_features, eps, momentum, affine: as ``BatchNorm``.
        mean_range: μ_j ~ U(−mean_range, mean_range) (paper: 0.5).
        scale_range: σ_j ~ U(low, high) (paper: (1, 1.25)).
        mean_jitter: m ~ U(μ_j ± mean_jitter) per sample (paper: 0.1).
        scale_jitter: s ~ N(σ_j, scale_jitter²) per sample (paper: 0.1).

    Shapes: input (N, C) or (N, C, H, W); output the same. For images every
    spatial position is a sample (as for the batch statistics).

    Raises:
        ValueError: as ``BatchNorm``; a negative noise magnitude; ``scale_range`` not two values, or
            with high < low.
        TypeError: as ``BatchNorm``; ``scale_range`` not iterable, or a noise magnitude that is not a number.
        RuntimeError: as ``BatchNorm`` (a ``torch.func`` transform in training mode).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 mean_range: float = 0.5, scale_range: tuple[float, float] = (1.0, 1.25),
                 mean_jitter: float = 0.1, scale_jitter: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.noise = _noise_settings(num_features, mean_range, scale_range, mean_jitter, scale_jitter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training and not self._population_pass:
            s, m = algorithm1_noise(out, **self.noise)
            out = s * out + m
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {_noise_repr(self.noise)}"


class NoiseInjection(nn.Module):
    """The noise of ``NoisyBatchNorm`` without the normalization: the plain-net control.

    Training mode: ``s * (x + b) + m`` with (s, m) from ``algorithm1_noise``;
    eval mode: ``x + b`` (without ``bias``: b = 0, the identity). ``mlp(norm="noise")``
    keeps the bias of the Linear before it (nothing here subtracts a mean), so its
    parameters are exactly the plain network's and in eval mode it *is* the plain network.

    Args:
        num_features: C. bias: learn an extra per-unit bias b (default False).
        mean_range, scale_range, mean_jitter, scale_jitter: as ``NoisyBatchNorm``.

    Shapes: input (N, C) or (N, C, H, W); output the same.

    Raises:
        ValueError: ``num_features`` not a positive int; a negative noise magnitude; ``scale_range`` not
            two values, or with high < low; input not (N, C[, L | H, W]) with C = ``num_features``.
        TypeError: ``scale_range`` not iterable, or a noise magnitude that is not a number; input not a
            floating-point tensor, or (with ``bias``) of another dtype than b (float16/bfloat16 into
            float32 is fine).
    """

    def __init__(self, num_features: int, bias: bool = False, mean_range: float = 0.5,
                 scale_range: tuple[float, float] = (1.0, 1.25), mean_jitter: float = 0.1,
                 scale_jitter: float = 0.1) -> None:
        super().__init__()
        _check_settings("NoiseInjection", num_features, 0.0, None)
        self.num_features = num_features
        self.noise = _noise_settings(num_features, mean_range, scale_range, mean_jitter, scale_jitter)
        if bias:
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.num_features, type(self).__name__, None if self.bias is None else self.bias.dtype)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).view(_channel_shape(x))
        if self.training:
            s, m = algorithm1_noise(x, **self.noise)
            x = s * x + m
        return x

    def extra_repr(self) -> str:
        return f"{self.num_features}, bias={self.bias is not None}, {_noise_repr(self.noise)}"


class DriftingBatchNorm(BatchNorm):
    """Batch norm followed by a slow, systematic drift of each unit's offset: a covariate-shift control.

    Santurkar et al.'s noise (``NoisyBatchNorm``) is redrawn at every step and averages out over
    time; the shift Ioffe & Szegedy (2015, §2) describe comes from parameter updates and
    accumulates. This layer adds such an accumulating shift, independent of the data: unit j
    gets a fixed direction d_j ~ N(0, 1) (drawn at construction from torch's RNG, so the seed
    fixes it), and after t training steps (training-mode forward passes) the BN output y
    becomes ``y + rate · t · d_j``. The layers above must keep tracking an input whose mean
    moves steadily, which nothing below renormalizes away at this layer. Eval mode adds the
    current offset without advancing t, so the network evaluated is the one being trained.

    Args:
        num_features, eps, momentum, affine: as ``BatchNorm``.
        rate: offset added per training step, in units of d_j (e.g. 1/3000 moves each unit's
            mean by |d_j| ≈ 0.8 on average over 3,000 steps).

    Buffers: ``direction`` (C,), ``t`` (the number of training steps taken, int64 scalar).
    Shapes: input (N, C) or (N, C, H, W); output the same.

    Raises:
        ValueError: as ``BatchNorm``, or ``rate`` not a finite number >= 0.
        TypeError: as ``BatchNorm``.
        RuntimeError: as ``BatchNorm`` (a ``torch.func`` transform in training mode).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 rate: float = 1e-3) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be a finite number >= 0 (offset per training step), got {rate!r}")
        self.rate = float(rate)
        self.register_buffer("direction", torch.randn(num_features))
        self.register_buffer("t", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training and not self._population_pass:
            self.t += 1
        offset = (self.rate * self.t.to(out.dtype)) * self.direction.to(out.dtype)
        return out + offset.view(_channel_shape(out))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rate={self.rate}"
