"""Batch normalization (Ioffe & Szegedy 2015) from tensor ops: ``BatchNorm`` and ``batchnorm_train``.

Training mode is one autograd node whose forward and backward are the paper's equations
(Algorithm 1 and §3's backward), with double backward for Hessian-vector products.
"""
from __future__ import annotations

import torch
from torch import nn

from bnlab.layers._common import (_channel_shape, _check_float, _check_input, _check_settings, _compute_dtype,
                                  _reduce_dims, _register_affine)

__all__ = ["BatchNorm", "batchnorm_train"]


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

    Raises:
        TypeError: ``x`` not a floating-point tensor.
        ValueError: only one of ``weight`` and ``bias`` given.
        RuntimeError: ``weight``/``bias`` without C entries (torch's broadcasting error).
        IndexError: ``x`` with fewer than 2 dimensions.
        ZeroDivisionError: an empty batch (no values per channel), outside ``torch.func`` transforms.
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


_IS_WRAPPED = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)  # looked up once: hot path


def _under_torch_func(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor is wrapped by a torch.func transform (grad, vmap, jvp, ...)."""
    return _IS_WRAPPED is not None and any(t is not None and _IS_WRAPPED(t) for t in tensors)


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
        RuntimeError: a ``torch.func`` transform in training mode.
    """

    _population_pass = False
    """True while ``recompute_population_statistics`` runs the network: a layer that adds
    training-time noise or drift after normalizing (the controls of notebook 04) leaves it out,
    because the inference network has none."""

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
