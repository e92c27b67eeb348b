"""Shared pieces of bnlab's normalization layers: axes, dtypes and argument checks.

Every layer takes (N, C) or (N, C, H, W) input (also (N, C, L)), as ``nn.BatchNorm1d``/
``nn.BatchNorm2d`` do, and normalizes per channel C.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

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


def _register_affine(module: nn.Module, num_features: int, affine: bool) -> None:
    """Give a norm layer its per-channel scale γ (``weight``, ones) and shift β (``bias``, zeros)."""
    if affine:
        module.weight = nn.Parameter(torch.ones(num_features))
        module.bias = nn.Parameter(torch.zeros(num_features))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)
