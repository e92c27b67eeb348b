"""Batch norm taken apart: the variants of notebook 09, each keeping some of BN's ingredients.

Every variant subclasses ``bnlab.layers.BatchNorm`` (same parameters γ = ``weight``,
β = ``bias``, same buffers and ``state_dict`` keys, same input shapes (N, C),
(N, C, L), (N, C, H, W)) and changes one thing:

==========================  ==========  =========  ===========================  ==================
layer                       centres     scales     statistics used in training  gradient through
                                                                                them
==========================  ==========  =========  ===========================  ==================
``BatchNorm``               yes         yes        this batch's                 yes
``DetachedBatchNorm``       yes         yes        this batch's                 no
``ReestimatedBatchNorm``    yes         yes        population estimate,         no
                                                   refreshed every K steps
``FrozenBatchNorm``         yes         yes        the first batch's, for ever  no
``MeanOnlyBatchNorm``       yes         no         this batch's mean            yes
``ScaleOnlyBatchNorm``      no          yes        this batch's variance        yes
==========================  ==========  =========  ===========================  ==================

They are written as plain tensor operations (autograd builds the backward, so
double backward for Hessian-vector products works as for any torch expression).
Registered for ``bnlab.models.mlp(norm=...)`` as "bn_detached", "bn_reestimated",
"bn_frozen", "bn_mean" and "bn_scale" (see ``bnlab.layers.norm_kinds()``).
"""
from __future__ import annotations

import torch

from bnlab import arguments as A
from bnlab.layers._common import _channel_shape, _compute_dtype, _reduce_dims
from bnlab.layers.batchnorm import BatchNorm, batchnorm_train

__all__ = ["GhostBatchNorm", "DetachedBatchNorm", "ReestimatedBatchNorm", "FrozenBatchNorm", "MeanOnlyBatchNorm",
           "ScaleOnlyBatchNorm", "VARIANT_KINDS"]


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
        self.virtual_batch_size = A.integer("virtual_batch_size", virtual_batch_size, minimum=2,
                                            hint="It is the examples per ghost batch (one example has no variance).")

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


class _PartialBatchNorm(BatchNorm):
    """BN with switches: ``center`` (subtract the mean), ``scale`` (divide by the std), ``detach``.

    Training mode normalizes with this batch's statistics (only those it uses get
    a gradient unless ``detach``) and updates the running statistics as
    ``BatchNorm`` does; eval mode uses the running statistics for the same operations.
    """

    center = True
    scale = True

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, detach: bool = False) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.detach = bool(detach)

    def _check_batch(self, x: torch.Tensor) -> int:
        self._check_forward(x)  # BatchNorm's checks: shape, dtype against the parameters, eps in training
        m = x.numel() // x.shape[1]
        if self.training and m == 1:
            raise ValueError(
                f"{type(self).__name__} expects more than 1 value per channel when training, got input size "
                f"{tuple(x.shape)}: batch statistics of a single value are undefined. Use a batch of at "
                "least 2, or call model.eval() to use the running statistics.")
        return m

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """γ ⊙ (x − μ)/√(σ² + ε) + β with the switched-off parts left out; μ, σ² of shape (C,).
        float16/bfloat16 input is computed in float32 and returned in its own dtype, as ``BatchNorm``."""
        shape = _channel_shape(x)
        ct = _compute_dtype(x.dtype)
        out = x.to(ct)
        if self.center:
            out = out - mean.to(ct).view(shape)
        if self.scale:
            out = out * torch.rsqrt(var.to(ct) + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.to(ct).view(shape) + self.bias.to(ct).view(shape)
        return out.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self._check_batch(x)
        if self.training and m == 0:
            return self._empty_batch(x)  # as BatchNorm (and torch): empty output, statistics unchanged
        if not self.training:
            return self._normalize(x, self.running_mean, self.running_var)
        var, mean = torch.var_mean(x.to(_compute_dtype(x.dtype)), dim=_reduce_dims(x), correction=0)
        self._update_running(mean, var, m)
        if self.detach:
            mean, var = mean.detach(), var.detach()
        return self._normalize(x, mean, var)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, detach={self.detach}"


class DetachedBatchNorm(_PartialBatchNorm):
    """BN whose batch mean and variance are constants for the gradient (Ioffe & Szegedy 2015, §2).

    The forward pass is exactly ``BatchNorm``'s (this batch's mean and biased
    variance, running statistics updated the same way); the backward treats μ_B
    and σ_B² as if they did not depend on x, so ∂ℓ/∂x = γ/√(σ_B²+ε) · ∂ℓ/∂y instead
    of BN's projected gradient. §2 of the paper argues that such a gradient step
    can move a layer's parameters without changing its output (a bias grows
    without bound while the loss stays put): "the gradient descent optimization
    does not take into account the fact that the normalization takes place", and
    they report that "the model blows up when the normalization parameters are
    computed outside the gradient descent step". (Their example uses statistics over
    the training set; here they are the batch's.)

    Args and shapes: as ``BatchNorm``.

    Raises:
        ValueError: as ``BatchNorm``: bad settings, input of the wrong shape, one value per channel
            or eps = 0 in training.
        TypeError: as ``BatchNorm``: integer input, or an input dtype the parameters cannot take.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, detach=True)


class MeanOnlyBatchNorm(_PartialBatchNorm):
    """Mean-only batch norm: y = γ ⊙ (x − μ_B) + β, no division (Salimans & Kingma 2016, "mean-only batch normalization").

    Centres each channel with the batch mean (gradient through μ_B unless
    ``detach``); eval mode subtracts the running mean. ``running_var`` is kept up to
    date as in ``BatchNorm`` (for inspection) but not used. Salimans & Kingma pair it
    with weight normalization; here it stands alone to isolate centring.

    Args: as ``BatchNorm``; ``detach=True`` treats μ_B as a constant in the backward
    (the setting of Ioffe & Szegedy's §2 argument).
    Shapes: as ``BatchNorm``.
    """

    scale = False


class ScaleOnlyBatchNorm(_PartialBatchNorm):
    """Scale-only batch norm: y = γ ⊙ x/√(σ_B² + ε) + β, no centring.

    Divides each channel by its batch standard deviation (σ_B² the biased
    variance about the batch mean, gradient through it unless ``detach``) but does
    not subtract the mean; eval mode divides by the running standard deviation.

    Args: as ``BatchNorm`` (and ``detach``). Shapes: as ``BatchNorm``.
    """

    center = False


class ReestimatedBatchNorm(_PartialBatchNorm):
    """BN with population statistics that are re-estimated every ``every`` steps and frozen in between.

    Training mode normalizes with ``running_mean``/``running_var`` (constants for the
    gradient), as eval mode does, so the layer is an affine map between refreshes.
    It tracks an exponential moving average of the batch mean and biased variance
    (``ema_mean``, ``ema_var``; weight ``momentum``, the first batch taken as is) at
    every training step t = 0, 1, ... and copies it into the running statistics at
    every t with t % every == 0. At t = 0 the layer therefore computes exactly what
    ``BatchNorm`` computes on that batch. Ghorbani, Krishnan & Xiao (2019) compare BN with
    batch statistics against BN with population statistics in training.

    Args:
        num_features, eps, momentum, affine: as ``BatchNorm`` (momentum weights the EMA).
        every: steps between re-estimates (a positive int), or None: never after step 0
            (``FrozenBatchNorm``).

    Shapes: as ``BatchNorm``. ``num_batches_tracked`` counts training steps.

    Raises:
        ValueError: ``every`` neither a positive int nor None; as ``BatchNorm``: bad settings, input of
            the wrong shape, one value per channel or eps = 0 in training.
        TypeError: as ``BatchNorm``: integer input, or an input dtype the parameters cannot take.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, every: int | None = 100) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"every must be a positive number of steps or None (never re-estimate), got {every!r}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, detach=True)
        self.every = every
        self.register_buffer("ema_mean", torch.zeros(num_features))
        self.register_buffer("ema_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._check_batch(x) == 0 and self.training:
            return self._empty_batch(x)
        if self.training:
            t = int(self.num_batches_tracked)
            with torch.no_grad():
                var, mean = torch.var_mean(x.to(_compute_dtype(x.dtype)), dim=_reduce_dims(x), correction=0)
                f = 1.0 if t == 0 else (1.0 / (t + 1) if self.momentum is None else self.momentum)
                torch._foreach_lerp_([self.ema_mean, self.ema_var], [mean.to(self.ema_mean.dtype), var.to(self.ema_var.dtype)], f)
                if (self.every is None and t == 0) or (self.every is not None and t % self.every == 0):
                    self.running_mean.copy_(self.ema_mean)
                    self.running_var.copy_(self.ema_var)
                self.num_batches_tracked.add_(1)
        return self._normalize(x, self.running_mean, self.running_var)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"every={self.every}")


class FrozenBatchNorm(ReestimatedBatchNorm):
    """BN whose statistics are computed once, on the first training batch, and then frozen.

    At the first training-mode call the layer takes that batch's mean and biased
    variance as its ``running_mean``/``running_var`` and from then on, in training
    and in eval mode, computes the fixed affine map y = γ ⊙ (x − μ₀)/√(σ₀² + ε) + β.
    At initialisation this is the same function as BN on that batch (and as a plain
    layer whose weights were rescaled by 1/σ₀ and shifted by −μ₀/σ₀: a data-dependent,
    well-scaled start), but the parameters are BN's: a small W divided by a small σ₀.

    Args: num_features, eps, affine as ``BatchNorm``. Shapes: as ``BatchNorm``.

    Raises:
        ValueError: as ``BatchNorm``: bad settings, input of the wrong shape, one value per channel
            or eps = 0 in training.
        TypeError: as ``BatchNorm``: integer input, or an input dtype the parameters cannot take.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(num_features, eps=eps, momentum=0.1, affine=affine, every=None)


VARIANT_KINDS = {
    "bn_detached": DetachedBatchNorm,
    "bn_reestimated": ReestimatedBatchNorm,
    "bn_frozen": FrozenBatchNorm,
    "bn_mean": MeanOnlyBatchNorm,
    "bn_scale": ScaleOnlyBatchNorm,
}
"""``mlp(norm=...)`` kind → layer class (registered in ``bnlab.layers.NORM_KINDS``)."""
