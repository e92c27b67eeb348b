"""Other normalizers: ℓp normalization (Hoffer et al. 2018), layer norm (Ba et al. 2016), group norm (Wu & He 2018).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bnlab import arguments as A
from bnlab.layers._common import (_channel_shape, _check_dtype, _check_float, _check_input, _check_settings,
                                  _compute_dtype, _reduce_dims, _register_affine)

__all__ = ["LpNorm", "LayerNorm", "GroupNorm"]


class LpNorm(nn.Module):
    """ℓp normalization with ONE scale per layer (p = 1, 2 or ∞), affine and with running statistics.

    Definition (training mode), with x of shape (N, C) and m = N (or N·H·W for images):

    1. centre every unit by its batch mean: x̃_ij = x_ij − μ_j;
    2. each unit's batch ℓp scale: ν_j = (1/m · Σ_i |x̃_ij|^p)^{1/p}
       (p = ∞: ν_j = max_i |x̃_ij|);
    3. one normalizer for the whole layer, the average over units: ν = (1/C) Σ_j ν_j;
    4. y_ij = γ_j · x̃_ij / (ν + eps) + β_j.

    Unlike batch norm, every unit is divided by the *same* number, so the units
    keep their relative scales: for p = 2, ν is the mean of the units' standard
    deviations, and ``LpNorm(2)`` equals BN only when all units have the same
    variance. (Dividing each unit by its own batch ℓ2 norm would be BN itself,
    up to a constant.) Eval mode uses the running mean (C,) and running scale (1,),
    exponential averages with weight ``momentum`` as in BN.

    Args:
        num_features: C. p: 1, 2 or ``float("inf")`` (also "inf"). eps: added to ν.
        momentum: weight of the new batch in the running averages. affine: learn γ, β.

    Shapes: input (N, C) or (N, C, H, W) (or (N, C, L)); output the same.

    Raises:
        ValueError: ``p`` not 1, 2 or inf; ``num_features`` not a positive int; eps not a finite number
            >= 0; ``momentum`` outside (0, 1]; input not (N, C[, L | H, W]) with C = ``num_features``;
            one value per channel in training.
        TypeError: ``momentum`` not a number (None included); input not a floating-point tensor, or of
            another dtype than the running statistics (float16/bfloat16 into float32 is fine).
    """

    def __init__(self, num_features: int, p: float | str = 2, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        if p not in (1, 2, math.inf, "inf"):
            raise ValueError(f"LpNorm: p must be 1, 2 or math.inf (one scale per layer from that norm), got {p!r}.")
        p = float(p)
        _check_settings("LpNorm", num_features, eps, None)
        A.real("LpNorm: momentum", momentum, 0, 1, strict=True,
               hint="It is the weight of the new batch in the running averages (e.g. 0.1); LpNorm has no "
                    "cumulative average, so None is not accepted.")
        self.num_features = num_features
        self.p = p
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        _register_affine(self, num_features, affine)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(1))

    def batch_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-unit batch mean (C,) and the layer's ℓp scale ν (1,) of x."""
        dims = _reduce_dims(x)
        mean = x.mean(dim=dims)
        centred = (x - mean.view(_channel_shape(x))).abs()
        if self.p == math.inf:
            per_unit = centred.amax(dim=dims)
        elif self.p == 1.0:
            per_unit = centred.mean(dim=dims)
        else:
            per_unit = centred.pow(2).mean(dim=dims).clamp_min(1e-24).sqrt()  # finite gradient at 0
        return mean, per_unit.mean().view(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.num_features, type(self).__name__, self.running_mean.dtype)
        dtype = x.dtype
        x = x.to(_compute_dtype(dtype))  # float16/bfloat16: computed in float32, returned in its own dtype
        shape = _channel_shape(x)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError(f"LpNorm needs more than 1 value per channel in training, got input "
                                 f"{tuple(x.shape)}; use a batch of at least 2 or model.eval().")
            mean, scale = self.batch_statistics(x)
            with torch.no_grad():
                stats = self.running_mean.dtype
                self.running_mean.mul_(1 - self.momentum).add_(mean.detach().to(stats), alpha=self.momentum)
                self.running_scale.mul_(1 - self.momentum).add_(scale.detach().to(stats), alpha=self.momentum)
        else:
            mean, scale = self.running_mean.to(x.dtype), self.running_scale.to(x.dtype)
        out = (x - mean.view(shape)) / (scale + self.eps)
        if self.affine:
            out = out * self.weight.to(x.dtype).view(shape) + self.bias.to(x.dtype).view(shape)
        return out.to(dtype)

    def extra_repr(self) -> str:
        p = "inf" if self.p == math.inf else int(self.p)
        return f"{self.num_features}, p={p}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class LayerNorm(nn.Module):
    """Layer normalization (Ba, Kiros & Hinton 2016) from tensor ops, equal to ``nn.LayerNorm``.

    Each example is normalized by the mean and biased variance of its own last
    ``len(normalized_shape)`` dimensions: y = (x − μ_i)/√(σ_i² + ε) · γ + β. No batch
    statistics, so training and eval mode compute the same function and a batch of one works.

    Args:
        normalized_shape: the trailing shape normalized over (an int D for (N, D) input).
        eps: added to the variance. elementwise_affine: learn γ (``weight``) and β (``bias``)
            of shape ``normalized_shape``. bias: learn β (with ``elementwise_affine``).

    Shapes: input (..., *normalized_shape); output the same. Same ``state_dict`` keys as ``nn.LayerNorm``.

    Raises:
        ValueError: ``normalized_shape`` not a positive int or a tuple/list of them; eps not a finite
            number >= 0; input whose trailing dimensions are not ``normalized_shape``.
        TypeError: input not a floating-point tensor, or of another dtype than γ (float16/bfloat16 into
            float32 is fine).
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape) \
            if isinstance(normalized_shape, (tuple, list, torch.Size)) else ()
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int (D, the features of (N, D) "
                             f"input) or a tuple of them, got {normalized_shape!r}.")
        _check_settings("LayerNorm", 1, eps, None)
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_float(x, f"LayerNorm{self.normalized_shape}")
        _check_dtype(x, None if self.weight is None else self.weight.dtype, f"LayerNorm{self.normalized_shape}")
        k = len(self.normalized_shape)
        if tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} got input of shape {tuple(x.shape)}: "
                             f"its last {k} dimension(s) must be {self.normalized_shape}.")
        dims = tuple(range(-k, 0))
        ct = _compute_dtype(x.dtype)  # float16/bfloat16: statistics in float32, output in x's dtype
        xc = x.to(ct)
        var, mean = torch.var_mean(xc, dim=dims, keepdim=True, correction=0)
        out = (xc - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight.to(ct)
        if self.bias is not None:
            out = out + self.bias.to(ct)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    """Group normalization (Wu & He 2018, Eq. 1 and §3.1) from tensor ops, equal to ``nn.GroupNorm``.

    The C channels of each example are split into ``num_groups`` groups of C/G
    consecutive channels; each group is normalized by the mean and biased variance
    of its own values (for images, over its channels and all positions), then a
    per-channel γ, β is applied. G = 1 is LayerNorm over (C, H, W); G = C is
    InstanceNorm. No batch statistics: training and eval mode agree, any batch size works.

    Args:
        num_groups: G, must divide ``num_channels``. num_channels: C.
        eps: added to the variance. affine: learn per-channel γ (``weight``) and β (``bias``).

    Shapes: input (N, C) or (N, C, *); output the same. Same ``state_dict`` keys as ``nn.GroupNorm``.

    Raises:
        ValueError: ``num_channels`` not a positive int; eps not a finite number >= 0; ``num_groups`` not
            a positive int dividing ``num_channels``; input with fewer than 2 dimensions or another
            number of channels.
        TypeError: input not a floating-point tensor, or of another dtype than γ (float16/bfloat16 into
            float32 is fine).
        RuntimeError: an empty batch (N = 0), from torch's reshape.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        _check_settings("GroupNorm", num_channels, eps, None, channels="num_channels")
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1 \
                or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups!r} must be a positive int and divide "
                             f"num_channels={num_channels}; e.g. num_groups=math.gcd({num_channels}, 32).")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, num_channels, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_float(x, f"GroupNorm({self.num_groups}, {self.num_channels})")
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects input (N, "
                             f"{self.num_channels}, ...), got {tuple(x.shape)}: channels are dim 1.")
        _check_dtype(x, self.weight.dtype if self.affine else None, f"GroupNorm({self.num_groups}, {self.num_channels})")
        ct = _compute_dtype(x.dtype)  # float16/bfloat16: statistics in float32, output in x's dtype
        grouped = x.to(ct).reshape(x.shape[0], self.num_groups, -1)
        var, mean = torch.var_mean(grouped, dim=2, keepdim=True, correction=0)
        out = ((grouped - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        if self.affine:
            shape = _channel_shape(x)
            out = out * self.weight.to(ct).view(shape) + self.bias.to(ct).view(shape)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
