"""Normalization layers written from tensor operations, and the registry ``mlp`` uses.

Every layer here takes (N, C) or (N, C, H, W) input (also (N, C, L)), as
``nn.BatchNorm1d``/``nn.BatchNorm2d`` do, and normalizes per channel C.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["BatchNorm", "batchnorm_train", "make_norm", "NORM_KINDS", "norm_kinds"]


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions statistics are taken over: batch and, for images, space."""
    return (0,) + tuple(range(2, x.ndim))


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a (C,) vector against x: (1, C) or (1, C, 1, 1)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


_LOW_PRECISION = (torch.float16, torch.bfloat16)
_MODEL_CAST = {torch.float64: "model.double()", torch.float32: "model.float()",
               torch.float16: "model.half()", torch.bfloat16: "model.bfloat16()"}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are taken in: float32 for float16/bfloat16 input (as torch does), else the input's.

    A float16 sum over a batch overflows past 65,504 (e.g. 64·32·32 values near 1).
    """
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def _check_float(x: Any, layer: str) -> None:
    """x must be a floating-point tensor (raw pixels are uint8: the fix is x.float() / 255)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects a torch.Tensor, got {type(x).__name__}; convert a NumPy array "
                        "with torch.from_numpy(x).float().")
    if not x.is_floating_point():
        raise TypeError(
            f"{layer} needs floating-point input, got dtype {x.dtype}. Convert it with x.float() "
            "(raw uint8 pixels: x.float() / 255 for values in [0, 1])."
        )


def _check_input(x: torch.Tensor, num_features: int, layer: str, param_dtype: torch.dtype | None = None) -> None:
    """Raise a clear error unless x is (N, C[, L | H, W]) floating-point input with C = num_features.

    With ``param_dtype`` (the dtype of γ, β and the running statistics), x must have that dtype,
    or be float16/bfloat16 with float32 parameters (mixed precision, what ``torch.autocast`` gives).
    """
    _check_float(x, f"{layer}({num_features})")
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{layer}({num_features}) expects input of shape (N, C), (N, C, L) or (N, C, H, W); got {tuple(x.shape)}. "
            "Flatten images with nn.Flatten() before a layer on features, or pass 4-D conv activations."
        )
    if x.shape[1] != num_features:
        raise ValueError(
            f"{layer}({num_features}) got {x.shape[1]} channels in input of shape {tuple(x.shape)}: "
            f"the channel axis is dim 1 and must have {num_features} entries."
        )
    _check_dtype(x, param_dtype, f"{layer}({num_features})")


def _check_dtype(x: torch.Tensor, param_dtype: torch.dtype | None, layer: str) -> None:
    """x's dtype must be the parameters', or float16/bfloat16 with float32 parameters (mixed precision)."""
    if param_dtype is not None and x.dtype != param_dtype and not (
            x.dtype in _LOW_PRECISION and param_dtype == torch.float32):
        raise TypeError(
            f"{layer} has {param_dtype} parameters but got {x.dtype} input. Convert the "
            f"model to the input's dtype with {_MODEL_CAST.get(x.dtype, f'model.to({x.dtype})')}, or the "
            f"input to the model's with x.to({param_dtype}). (float16/bfloat16 input into a float32 layer is "
            "fine: that is mixed precision.)"
        )


def _check_settings(layer: str, num_features: int, eps: float, momentum: float | None,
                    channels: str = "num_features") -> None:
    """Validate a norm layer's constructor arguments (shared by BatchNorm and the layers built on it)."""
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"{layer}: {channels} must be a positive int (the number of channels C), "
                         f"got {num_features!r}.")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"{layer}: eps must be a finite number >= 0 (default 1e-5), got {eps!r}.")
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, (int, float))
                                 or not 0 <= momentum <= 1):
        raise ValueError(
            f"{layer}: momentum must be in [0, 1] (the weight of the new batch in the running average, "
            f"torch's convention) or None (cumulative average), got {momentum!r}. If you meant the weight "
            f"of the old value (CS231n's convention), pass 1 - that."
        )


def batchnorm_train(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch norm in training mode with the paper's closed-form backward (one autograd node).

    The same equations as ``bnlab.functional.batchnorm_forward`` and
    ``batchnorm_backward_alt``, in torch, per channel over every other dimension:
    forward y = γ x̂ + β with x̂ = (x − μ_B)/√(σ_B² + ε); backward
    ∂ℓ/∂x = γ/(m√(σ_B²+ε)) · (m ∂ℓ/∂y − Σ ∂ℓ/∂y − x̂ Σ ∂ℓ/∂y x̂). Double backward
    (``create_graph=True``, e.g. Hessian-vector products) differentiates the plain formula
    with respect to those of x, γ, β that require a gradient (any of them may be frozen).
    Under ``torch.func`` transforms the plain formula is used throughout.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W), floating point.
        weight, bias: (C,) γ and β, or both None (no affine transform).
        eps: added to the variance.

    float16/bfloat16 input (with parameters of its dtype or float32) is computed in
    float32, as torch does, and the output cast back to the input's dtype.

    Returns:
        out (shape and dtype of x); batch mean and biased batch variance, (C,) each, in the
        compute dtype (float32 for float16/bfloat16 input), not differentiable.
    """
    _check_float(x, "batchnorm_train")
    if (weight is None) != (bias is None):
        raise ValueError("batchnorm_train: pass both weight (γ) and bias (β), or neither (no affine transform).")
    ct = _compute_dtype(x.dtype)
    if _under_torch_func(x, weight, bias):
        # torch.func transforms (grad, vmap, jacrev, jvp, hessian) trace plain tensor ops, not this
        # one-node Function: the same formula, differentiated by autograd node by node.
        xc = x.to(ct)
        var, mean = torch.var_mean(xc.detach(), dim=_reduce_dims(x), correction=0)
        out = _batchnorm_naive(xc, None if weight is None else weight.to(ct), None if bias is None else bias.to(ct), eps)
        return out.to(x.dtype), mean, var
    if x.dtype == ct and (weight is None or weight.dtype == ct):
        return _BatchNormFunction.apply(x, weight, bias, eps)
    # Mixed or low precision: statistics and arithmetic in float32, the output in x's dtype.
    # The casts sit outside the one-node function, so autograd gives each input a gradient of its own dtype.
    out, mean, var = _BatchNormFunction.apply(x.to(ct), None if weight is None else weight.to(ct),
                                              None if bias is None else bias.to(ct), eps)
    return out.to(x.dtype), mean, var


def _under_torch_func(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor is wrapped by a torch.func transform (grad, vmap, jvp, ...)."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is not None and any(t is not None and wrapped(t) for t in tensors)


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
        momentum: weight of the new batch in the running average, in [0, 1]; ``None``
            gives the cumulative (equal-weight) average, as in torch.
        affine: learn a per-channel scale gamma (``weight``) and shift beta (``bias``).

    Shapes: input (N, C) or (N, C, H, W) (or (N, C, L)), floating point; output the same
    shape, dtype and memory format. float16/bfloat16 input works with parameters of
    its own dtype or float32 (mixed precision, as under ``torch.autocast``): statistics
    are computed in float32 and the output keeps the input's dtype.

    ``torch.func`` transforms (grad, vmap, jacrev, jvp) work in eval mode, as for torch's
    layer; in training mode both refuse (the running statistics are updated in place).

    Raises:
        ValueError: bad settings (num_features < 1, eps < 0, momentum outside [0, 1]);
            input of the wrong shape; one value per channel, or eps = 0, in training.
        TypeError: integer input (use ``x.float()``), or an input dtype the parameters
            cannot take (e.g. float64 into float32: ``model.double()``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        _check_settings(type(self).__name__, num_features, eps, momentum)
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
        var, mean = torch.var_mean(x.to(_compute_dtype(x.dtype)), dim=dims, correction=0)
        return mean, var

    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            # (1 − f)·running + f·batch, both buffers in one call; the variance unbiased by m/(m−1)
            dtype = self.running_mean.dtype
            torch._foreach_lerp_([self.running_mean, self.running_var],
                                 [mean.detach().to(dtype), (var.detach() * (m / (m - 1))).to(dtype)], f)

    def _check_forward(self, x: torch.Tensor) -> None:
        """The input checks every layer built on BatchNorm shares (shape, dtype, training settings)."""
        _check_input(x, self.num_features, type(self).__name__, self.running_mean.dtype)
        if self.training and x.numel() // x.shape[1] == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.size())}: "
                "batch statistics of a single value are undefined. Use a batch of at least 2, "
                "or call model.eval() to use the running statistics."
            )
        if self.training and self.eps <= 0:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) has eps={self.eps} in training mode: a channel "
                "that is constant in the batch (e.g. Fashion-MNIST's border pixels, 0 in every image) has "
                "variance 0 and gives 0/0 = NaN. Use eps > 0 (default 1e-5), as torch requires in training."
            )

    def _empty_batch(self, x: torch.Tensor) -> torch.Tensor:
        """torch's behaviour on an empty training batch: empty output, statistics unchanged, counter + 1."""
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
        return self._affine(x.to(_compute_dtype(x.dtype))).to(x.dtype)

    def _affine(self, xhat: torch.Tensor) -> torch.Tensor:
        if not self.affine:
            return xhat
        shape = _channel_shape(xhat)
        return xhat * self.weight.to(xhat.dtype).view(shape) + self.bias.to(xhat.dtype).view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_forward(x)
        if self.training:
            m = x.numel() // x.shape[1]
            if m == 0:
                return self._empty_batch(x)
            if _under_torch_func(x, self.weight, self.bias):
                raise RuntimeError(
                    f"{type(self).__name__}({self.num_features}) in training mode updates its running statistics "
                    "in place, which torch.func transforms (grad, vmap, jacrev, ...) cannot do (nn.BatchNorm1d "
                    "refuses too). Call model.eval() to use the running statistics, or differentiate the "
                    "batch-statistics formula itself: bnlab.layers.batchnorm_train(x, layer.weight, layer.bias, "
                    "layer.eps)[0]."
                )
            out, mean, var = batchnorm_train(x, self.weight, self.bias, self.eps)
            self._update_running(mean, var, m)
            return out
        return self._inference(x)

    def _inference(self, x: torch.Tensor) -> torch.Tensor:
        """Algorithm 2 with the running statistics, in float32 for float16/bfloat16 input."""
        ct = _compute_dtype(x.dtype)
        shape = _channel_shape(x)
        mean, var = self.running_mean.to(ct), self.running_var.to(ct)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight.to(ct)
        out = (x.to(ct) - mean.view(shape)) * scale.view(shape)
        if self.affine:
            out = out + self.bias.to(ct).view(shape)
        return out.to(x.dtype)

    # state dicts written before torch added num_batches_tracked (version < 2) load, the counter
    # keeping its value, exactly as in nn.BatchNorm1d/2d
    _version = 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:  # type: ignore[override]
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and key not in state_dict:
            state_dict[key] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# --------------------------------------------------------------------------- noisy BN, noise, ℓp norms

__all__ += ["NoisyBatchNorm", "NoiseInjection", "DriftingBatchNorm", "LpNorm", "algorithm1_noise"]

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
        if self.training:
            self.t += 1
        offset = (self.rate * self.t.to(out.dtype)) * self.direction.to(out.dtype)
        return out + offset.view(_channel_shape(out))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rate={self.rate}"


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


# --------------------------------------------------------------------------- ghost batch norm

__all__ += ["GhostBatchNorm"]


class GhostBatchNorm(BatchNorm):
    """Ghost batch normalization (Hoffer, Hubara & Soudry 2017, §4, Algorithm 1).

    In training mode the batch of N examples is cut into N/v consecutive "ghost"
    (virtual) batches of v = ``virtual_batch_size`` examples, and each is normalized
    by its own mean and biased variance: the noise of batch statistics of size v,
    while the gradient step still averages over all N examples. The running
    statistics get one update per call, with the ghost batches' mean statistics
    (the variance unbiased by v/(v−1)). Eval mode is ``BatchNorm``'s (running statistics).
    v = N is ordinary batch norm.

    Args:
        num_features, eps, momentum, affine: as ``BatchNorm``.
        virtual_batch_size: v, examples per ghost batch (≥ 2); N must be a multiple of v.

    Shapes: input (N, C) or (N, C, H, W) (or (N, C, L)); output the same.

    Raises:
        ValueError: in training, if N is not a multiple of v.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 virtual_batch_size: int = 32) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        if int(virtual_batch_size) < 2:
            raise ValueError(f"virtual_batch_size must be >= 2 (one example has no variance), got {virtual_batch_size}")
        self.virtual_batch_size = int(virtual_batch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.virtual_batch_size
        if not self.training or x.shape[0] == v:
            return super().forward(x)
        self._check_forward(x)
        n, c = x.shape[0], x.shape[1]
        if n % v:
            raise ValueError(f"GhostBatchNorm(virtual_batch_size={v}) got a batch of {n}: the batch must be a "
                             f"multiple of {v}. Change the batch size or virtual_batch_size.")
        k = n // v
        rest = x.shape[2:]
        # (k·v, C, ...) → (v, k·C, ...): ghost batch j's channels become channels j·C..(j+1)·C − 1,
        # so one batch-norm call normalizes every ghost batch by its own statistics.
        xs = x.reshape(k, v, c, *rest).transpose(0, 1).reshape(v, k * c, *rest)
        weight = None if self.weight is None else self.weight.repeat(k)
        bias = None if self.bias is None else self.bias.repeat(k)
        out, mean, var = batchnorm_train(xs, weight, bias, self.eps)
        m = v * (x.numel() // (n * c))
        self._update_running(mean.view(k, c).mean(0), var.view(k, c).mean(0), m)
        return out.reshape(v, k, c, *rest).transpose(0, 1).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, virtual_batch_size={self.virtual_batch_size}"


# --------------------------------------------------------------------------- layer and group norm

__all__ += ["LayerNorm", "GroupNorm"]


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


# --------------------------------------------------------------------------- population statistics

__all__ += ["recompute_population_statistics", "batchnorm_layers"]


def batchnorm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The batch-norm layers of ``model`` (bnlab's ``BatchNorm`` and its subclasses, torch's
    ``nn.BatchNorm1d/2d/3d``) that keep running statistics, by qualified name."""
    from torch.nn.modules.batchnorm import _BatchNorm
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}.")
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (BatchNorm, _BatchNorm)) and getattr(m, "running_mean", None) is not None}


@torch.no_grad()
def recompute_population_statistics(model: nn.Module, x: torch.Tensor, batch_size: int = 60,
                                    num_images: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Re-estimate every BN layer's population statistics with the current weights (Algorithm 2).

    Ioffe & Szegedy (2015), Algorithm 2, step 10: "Process multiple training
    mini-batches B, each of size m, and average over them: E[x] ← E_B[μ_B],
    Var[x] ← m/(m−1) E_B[σ_B²]". The first ``num_images`` rows of ``x`` are cut
    into consecutive batches of ``batch_size`` (a last partial batch is dropped)
    and passed through the network with every BN layer normalizing by its batch
    statistics (the training network), so each layer sees inputs computed with the
    current weights; every other module is in eval mode (dropout off, as at
    inference: the statistics the inference network will meet, Li et al. 2019 §4).
    Each BN layer's ``running_mean``/``running_var`` are then set to those averages
    (m counts every value per channel: batch × positions for images). This is
    "precise BN" (Wu & Johnson 2021) and replaces the exponential moving average.

    Nothing else changes: parameters, other buffers (``num_batches_tracked``), the
    train/eval flag of every module and the global RNG state are as before.

    Args:
        model: any module containing ``bnlab.layers.BatchNorm`` or ``nn.BatchNorm*d`` layers.
        x: (N, ...) training inputs, as the model takes them (e.g. (N, 1, 28, 28)).
        batch_size: m, images per batch (≥ 2).
        num_images: use the first this many rows of x (default all); must hold one batch.

    Returns:
        layer name → (mean, unbiased variance), (C,) each: the statistics now installed.

    Raises:
        ValueError: no BN layer in ``model``, ``batch_size`` < 2, or too few images for one batch.
    """
    bns = batchnorm_layers(model)
    _check_float(x, "recompute_population_statistics: x")
    if not bns:
        raise ValueError("recompute_population_statistics: the model has no batch-norm layer with running "
                         "statistics (bnlab.layers.BatchNorm or nn.BatchNorm*d with track_running_stats=True).")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch of one has no variance), got {batch_size}")
    n = len(x) if num_images is None else min(int(num_images), len(x))
    batches = n // batch_size
    if batches < 1:
        raise ValueError(f"need at least one batch of {batch_size} images, got num_images={num_images} "
                         f"and {len(x)} rows in x; pass more images or a smaller batch_size.")
    flags = {m: m.training for m in model.modules()}
    saved = {name: {k: v.clone() for k, v in bn.named_buffers(recurse=False)} for name, bn in bns.items()}
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in bns}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, args: tuple) -> None:
            inp = args[0]
            dims = _reduce_dims(inp)
            var, mean = torch.var_mean(inp.double(), dim=dims, correction=0)
            acc = sums[name]
            acc[0] = acc[0] + mean
            acc[1] = acc[1] + var
            acc[2] = inp.numel() // inp.shape[1]
        return record

    handles = [bn.register_forward_pre_hook(hook(name)) for name, bn in bns.items()]
    try:
        with torch.random.fork_rng(devices=[]):
            model.eval()
            for bn in bns.values():
                bn.train()
            for i in range(batches):
                try:
                    model(x[i * batch_size:(i + 1) * batch_size])
                except RuntimeError as err:
                    raise ValueError(f"recompute_population_statistics: the model cannot take x of shape "
                                     f"{tuple(x.shape)}: {err}. Pass training inputs the model was built for.") from err
    finally:
        for h in handles:
            h.remove()
        for module, flag in flags.items():
            module.train(flag)
        for name, bn in bns.items():
            for k, v in bn.named_buffers(recurse=False):
                v.copy_(saved[name][k])
    out = {}
    for name, bn in bns.items():
        mean_sum, var_sum, m = sums[name]
        mean = (mean_sum / batches).to(bn.running_mean.dtype)
        var = (var_sum / batches * (m / (m - 1))).to(bn.running_var.dtype)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        out[name] = (mean.clone(), var.clone())
    return out


# --------------------------------------------------------------------------- the registry

def _group_norm(num_features: int, num_groups: int | None = None, **kw) -> nn.Module:
    groups = num_groups if num_groups is not None else math.gcd(num_features, 32)
    return GroupNorm(groups, num_features, **kw)


NORM_KINDS: dict[str, Callable[..., nn.Module]] = {
    "bn": BatchNorm,
    "torch_bn": nn.BatchNorm1d,  # torch's own layer, for comparisons with "bn"
    "ln": lambda num_features, **kw: LayerNorm(num_features, **kw),
    "gn": _group_norm,
    "noisy_bn": NoisyBatchNorm,
    "ghost_bn": GhostBatchNorm,  # BN over virtual batches (Hoffer et al. 2017): norm_kwargs={"virtual_batch_size": v}  # BN + Santurkar et al.'s Algorithm 1 noise
    "noise": NoiseInjection,  # the same noise without BN (plain-net control)
    "drift_bn": DriftingBatchNorm,  # BN + a slow systematic drift of each unit's offset (control)
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
    (bnlab.layers.LayerNorm), "gn" (bnlab.layers.GroupNorm, ``num_groups`` defaults to gcd(C, 32)), and
    the others listed by ``norm_kinds()``. Extra keyword arguments go to the layer.
    """
    if kind in NORM_KINDS:
        try:
            return NORM_KINDS[kind](num_features, **kwargs)
        except TypeError as err:
            if "unexpected keyword argument" not in str(err):
                raise
            bad = str(err).split("unexpected keyword argument")[-1].strip()
            raise TypeError(f"norm={kind!r} does not take the keyword argument {bad} (from norm_kwargs): "
                            f"{err}. Check its spelling against the layer's signature, "
                            f"help(bnlab.layers.make_norm({kind!r}, {num_features}).__class__).") from None
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
