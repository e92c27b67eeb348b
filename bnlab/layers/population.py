"""Population statistics: find a model's BN layers and re-estimate their statistics (Algorithm 2).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from bnlab.layers._common import _check_float, _reduce_dims
from bnlab.layers.batchnorm import BatchNorm

__all__ = ["recompute_population_statistics", "batchnorm_layers", "is_batchnorm"]


def is_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` normalizes with batch statistics in training: bnlab's ``BatchNorm`` and every
    layer built on it (noisy, ghost, the variants of notebook 09) or torch's ``nn.BatchNorm1d/2d/3d``."""
    from torch.nn.modules.batchnorm import _BatchNorm
    return isinstance(module, (BatchNorm, _BatchNorm))


def batchnorm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The batch-norm layers of ``model`` (bnlab's ``BatchNorm`` and its subclasses, torch's
    ``nn.BatchNorm1d/2d/3d``) that keep running statistics, by qualified name.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}.")
    return {name: m for name, m in model.named_modules()
            if is_batchnorm(m) and getattr(m, "running_mean", None) is not None}


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
    inference: the statistics the inference network will meet, Li et al. 2019 §4),
    and BN layers that add noise or drift in training (``NoisyBatchNorm``,
    ``DriftingBatchNorm``) add none.
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
                bn._population_pass = True
            for i in range(batches):
                try:
                    model(x[i * batch_size:(i + 1) * batch_size])
                except RuntimeError as err:
                    raise ValueError(f"recompute_population_statistics: the model cannot take x of shape "
                                     f"{tuple(x.shape)}: {err}. Pass training inputs the model was built for.") from err
    finally:
        for h in handles:
            h.remove()
        for bn in bns.values():
            bn.__dict__.pop("_population_pass", None)
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
