"""Normalization layers written from tensor operations, and the registry ``mlp`` uses.

Every layer here takes (N, C) or (N, C, H, W) input (also (N, C, L)), as
``nn.BatchNorm1d``/``nn.BatchNorm2d`` do, and normalizes per channel C.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["BatchNorm", "batchnorm_train", "make_norm", "NORM_KINDS", "norm_kinds"]


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


def batchnorm_train(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch norm in training mode with the paper's closed-form backward (one autograd node).

    The same equations as ``bnlab.functional.batchnorm_forward`` and
    ``batchnorm_backward_alt``, in torch, per channel over every other dimension:
    forward y = γ x̂ + β with x̂ = (x − μ_B)/√(σ_B² + ε); backward
    ∂ℓ/∂x = γ/(m√(σ_B²+ε)) · (m ∂ℓ/∂y − Σ ∂ℓ/∂y − x̂ Σ ∂ℓ/∂y x̂). Double backward
    (``create_graph=True``) is supported by differentiating the plain formula.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W).
        weight, bias: (C,) γ and β, or both None (no affine transform).
        eps: added to the variance.

    Returns:
        out (shape of x); batch mean and biased batch variance, (C,) each, not differentiable.
    """
    return _BatchNormFunction.apply(x, weight, bias, eps)


def _batchnorm_naive(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                     eps: float) -> torch.Tensor:
    """Algorithm 1 as plain tensor ops (autograd builds the backward node by node)."""
    dims, shape = _reduce_dims(x), _channel_shape(x)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    out = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        out = out * weight.view(shape) + bias.view(shape)
    return out


def _dims_and_shape(x: torch.Tensor) -> tuple[int | tuple[int, ...], tuple[int, ...] | None]:
    """Reduction dims and broadcast shape; for (N, C) input a plain dim 0 and no reshaping (fewer ops)."""
    if x.ndim == 2:
        return 0, None
    return _reduce_dims(x), _channel_shape(x)


def _bcast(v: torch.Tensor, shape: tuple[int, ...] | None) -> torch.Tensor:
    """A (C,) vector shaped to broadcast against the input (as is for (N, C) input)."""
    return v if shape is None else v.view(shape)


class _BatchNormFunction(torch.autograd.Function):
    """Forward and backward of training-mode batch norm as one autograd node (see ``batchnorm_train``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # type: ignore[override]
        # No autograd inside forward, so temporaries are updated in place (fewer kernels).
        dims, shape = _dims_and_shape(x)
        inv_m = 1.0 / (x.numel() // x.shape[1])
        mean = x.sum(dim=dims).mul_(inv_m)                       # μ_B
        xc = x - _bcast(mean, shape)                             # x − μ_B
        var = (xc * xc).sum(dim=dims).mul_(inv_m)                # σ_B² (biased)
        inv_std = (var + eps).rsqrt_()                           # 1/√(σ_B² + ε)
        xhat = xc.mul_(_bcast(inv_std, shape))                   # x̂
        out = xhat if weight is None else torch.addcmul(_bcast(bias, shape), xhat, _bcast(weight, shape))
        ctx.save_for_backward(x, xhat, inv_std, weight, bias)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)
        return out, mean, var

    @staticmethod
    def backward(ctx, dout, _dmean, _dvar):  # type: ignore[override]
        x, xhat, inv_std, weight, bias = ctx.saved_tensors
        affine = weight is not None
        if dout is None:
            return None, None, None, None
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            # Differentiate the plain formula with respect to the inputs that need a gradient
            # only: a frozen input (x from a frozen layer, or γ, β frozen) has no graph to join.
            wanted = [i for i, t in enumerate((x, weight, bias)) if t is not None and ctx.needs_input_grad[i]]
            with torch.enable_grad():
                out = _batchnorm_naive(x, weight, bias, ctx.eps)
                grads = torch.autograd.grad(out, [(x, weight, bias)[i] for i in wanted], dout, create_graph=True)
            result: list[torch.Tensor | None] = [None, None, None, None]
            for i, g in zip(wanted, grads):
                result[i] = g
            return tuple(result)
        dims, shape = _dims_and_shape(x)
        inv_m = 1.0 / (x.numel() // x.shape[1])
        dbeta = dout.sum(dim=dims)                               # ∂ℓ/∂β = Σ ∂ℓ/∂y
        dgamma = (dout * xhat).sum(dim=dims)                     # ∂ℓ/∂γ = Σ ∂ℓ/∂y · x̂
        dx = None
        if ctx.needs_input_grad[0]:
            # ∂ℓ/∂x = k · (∂ℓ/∂y − mean(∂ℓ/∂y) − x̂ · mean(∂ℓ/∂y · x̂)),  k = γ/√(σ²+ε)
            k = inv_std if weight is None else inv_std * weight
            centre = torch.addcmul(_bcast(dbeta * inv_m, shape), xhat, _bcast(dgamma * inv_m, shape))
            dx = centre.sub_(dout).mul_(_bcast(k.neg(), shape))
        return (dx, dgamma if affine and ctx.needs_input_grad[1] else None,
                dbeta if affine and ctx.needs_input_grad[2] else None, None)


def _register_affine(module: nn.Module, num_features: int, affine: bool) -> None:
    """Give a norm layer its per-channel scale γ (``weight``, ones) and shift β (``bias``, zeros)."""
    if affine:
        module.weight = nn.Parameter(torch.ones(num_features))
        module.bias = nn.Parameter(torch.zeros(num_features))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


class BatchNorm(nn.Module):
    """Batch normalization (Ioffe & Szegedy 2015, Algorithms 1 and 2) from tensor ops.

    Training mode normalizes with the batch mean and biased variance over every
    dimension but the channel one and updates the running statistics
    (running_var uses the unbiased m/(m-1) variance, as torch does); eval mode
    uses the running statistics. Same parameters, buffers and ``state_dict``
    keys as ``nn.BatchNorm1d``/``nn.BatchNorm2d``, so state dicts load either way.
    In training mode the forward and the closed-form backward are one autograd
    node (``batchnorm_train``) instead of the ~8 nodes autograd would build from
    the formula, which makes a training step faster (torch's fused C++ kernel in
    ``nn.BatchNorm1d`` is faster still).

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
        _register_affine(self, num_features, affine)
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
            # (1 − f)·running + f·batch, both buffers in one call; the variance unbiased by m/(m−1)
            torch._foreach_lerp_([self.running_mean, self.running_var],
                                 [mean.detach(), var.detach() * (m / (m - 1))], f)

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
            out, mean, var = batchnorm_train(x, self.weight, self.bias, self.eps)
            self._update_running(mean, var, m)
            return out
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


# --------------------------------------------------------------------------- noisy BN, noise, ℓp norms

__all__ += ["NoisyBatchNorm", "NoiseInjection", "LpNorm", "algorithm1_noise"]

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
    """
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
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 mean_range: float = 0.5, scale_range: tuple[float, float] = (1.0, 1.25),
                 mean_jitter: float = 0.1, scale_jitter: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.noise = _noise_settings(num_features, mean_range, scale_range, mean_jitter, scale_jitter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training:
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
    """

    def __init__(self, num_features: int, bias: bool = False, mean_range: float = 0.5,
                 scale_range: tuple[float, float] = (1.0, 1.25), mean_jitter: float = 0.1,
                 scale_jitter: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.noise = _noise_settings(num_features, mean_range, scale_range, mean_jitter, scale_jitter)
        if bias:
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.num_features, type(self).__name__)
        if self.bias is not None:
            x = x + self.bias.view(_channel_shape(x))
        if self.training:
            s, m = algorithm1_noise(x, **self.noise)
            x = s * x + m
        return x

    def extra_repr(self) -> str:
        return f"{self.num_features}, bias={self.bias is not None}, {_noise_repr(self.noise)}"


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
    """

    def __init__(self, num_features: int, p: float | str = 2, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        p = float(p)
        if p not in (1.0, 2.0, math.inf):
            raise ValueError(f"LpNorm supports p = 1, 2 or inf, got p={p}")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
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
        _check_input(x, self.num_features, type(self).__name__)
        shape = _channel_shape(x)
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError(f"LpNorm needs more than 1 value per channel in training, got input "
                                 f"{tuple(x.shape)}; use a batch of at least 2 or model.eval().")
            mean, scale = self.batch_statistics(x)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
                self.running_scale.mul_(1 - self.momentum).add_(scale.detach(), alpha=self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
        out = (x - mean.view(shape)) / (scale + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    def extra_repr(self) -> str:
        p = "inf" if self.p == math.inf else int(self.p)
        return f"{self.num_features}, p={p}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# --------------------------------------------------------------------------- the registry

def _group_norm(num_features: int, num_groups: int | None = None, **kw) -> nn.Module:
    groups = num_groups if num_groups is not None else math.gcd(num_features, 32)
    return nn.GroupNorm(groups, num_features, **kw)


NORM_KINDS: dict[str, Callable[..., nn.Module]] = {
    "bn": BatchNorm,
    "torch_bn": nn.BatchNorm1d,  # torch's own layer, for comparisons with "bn"
    "ln": lambda num_features, **kw: nn.LayerNorm(num_features, **kw),
    "gn": _group_norm,
    "noisy_bn": NoisyBatchNorm,  # BN + Santurkar et al.'s Algorithm 1 noise
    "noise": NoiseInjection,  # the same noise without BN (plain-net control)
    "l1": lambda num_features, **kw: LpNorm(num_features, p=1, **kw),
    "l2": lambda num_features, **kw: LpNorm(num_features, p=2, **kw),
    "linf": lambda num_features, **kw: LpNorm(num_features, p=math.inf, **kw),
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


# --------------------------------------------------------------------------- BN variants (notebook 09)
# Defined in bnlab.layers_variants (which builds on BatchNorm above); importable from here too,
# loaded on first use so that neither module has to import the other at import time.

_VARIANTS = {"bn_detached": "DetachedBatchNorm", "bn_reestimated": "ReestimatedBatchNorm",
             "bn_frozen": "FrozenBatchNorm", "bn_mean": "MeanOnlyBatchNorm", "bn_scale": "ScaleOnlyBatchNorm"}
__all__ += list(_VARIANTS.values())


def _variant(name: str) -> type[nn.Module]:
    from bnlab import layers_variants
    return getattr(layers_variants, name)


def _variant_factory(name: str) -> Callable[..., nn.Module]:
    return lambda num_features, **kw: _variant(name)(num_features, **kw)


NORM_KINDS.update({kind: _variant_factory(name) for kind, name in _VARIANTS.items()})


def __getattr__(name: str):
    if name in _VARIANTS.values():
        return _variant(name)
    raise AttributeError(f"module 'bnlab.layers' has no attribute {name!r}")
