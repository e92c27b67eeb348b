"""Covariate shifts of test images: corruptions in the style of ImageNet-C (Hendrycks & Dietterich 2019).

Used to test BN's statistics as an unsupervised adapter (Schneider et al. 2020): the
images change, the labels do not. Every function takes images in [0, 1] of any shape
(N, ...) and returns new ones in [0, 1]; the input is not modified.
"""
from __future__ import annotations

import torch

__all__ = ["CORRUPTIONS", "corrupt"]

CORRUPTIONS = ("brightness", "contrast", "gaussian_noise")


def corrupt(x: torch.Tensor, kind: str, severity: float, seed: int = 0) -> torch.Tensor:
    """A corrupted copy of images ``x`` (values in [0, 1]).

    Kinds (the severity parameter in brackets):
        "brightness": x + b, clipped to [0, 1] [b, e.g. 0.3];
        "contrast": each image's deviations from its own mean pixel scaled by c, (x − x̄)·c + x̄ [c, e.g. 0.3];
        "gaussian_noise": x + N(0, s²) per pixel, clipped [s, e.g. 0.3]; the noise is drawn from a
            generator seeded with ``seed`` (same seed, same noise; the global RNG is not touched).

    Shapes: (N, ...) in, the same out.

    Raises:
        ValueError: an unknown ``kind``, or a negative ``severity`` for "contrast" or "gaussian_noise".
    """
    if kind == "brightness":
        return (x + severity).clamp(0.0, 1.0)
    if kind == "contrast":
        if severity < 0:
            raise ValueError(f"contrast factor must be >= 0, got {severity}")
        mean = x.reshape(len(x), -1).mean(1).view(-1, *([1] * (x.ndim - 1)))
        return ((x - mean) * severity + mean).clamp(0.0, 1.0)
    if kind == "gaussian_noise":
        if severity < 0:
            raise ValueError(f"noise std must be >= 0, got {severity}")
        gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (x + severity * noise).clamp(0.0, 1.0)
    raise ValueError(f"unknown corruption {kind!r}: choose one of {CORRUPTIONS}")
