"""Which statistics BN uses at inference: running averages, batch statistics, recomputed ones.

``evaluate`` measures a model with either its running statistics (eval mode) or the
statistics of each test batch, without changing it; ``with_population_statistics``
evaluates after re-estimating the population statistics on chosen images (Algorithm 2
of Ioffe & Szegedy 2015; on unlabelled shifted test images this is the adaptation of
Schneider et al. 2020); ``final`` turns any function of the model into a ``fit`` probe
that is read at the end of training.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from bnlab.layers import batchnorm_layers, recompute_population_statistics
from bnlab import arguments as A
from bnlab.probes.core import _check_model, _check_tensor, preserved_state

__all__ = ["STATISTICS", "evaluate", "with_population_statistics", "final"]

STATISTICS = ("running", "batch")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, statistics: str = "running",
             batch_size: int = 1000) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on (x, y), leaving the model bit-identical.

    Args:
        model: a classifier; every module but BN is in eval mode (dropout off).
        x: (N, ...) inputs; y: (N,) int64 labels.
        statistics: "running" — BN layers use their running statistics (eval mode, what
            ``model.eval()`` gives); "batch" — each BN layer normalizes every test batch of
            ``batch_size`` examples by that batch's own statistics (training-mode BN). A last
            partial batch of one example is left out (its batch variance is undefined).
        batch_size: examples per forward pass (with "batch": the m of the batch statistics).

    Returns:
        (accuracy in [0, 1], mean cross-entropy in nats) over the examples evaluated.

    Raises:
        ValueError: unknown ``statistics``; ``batch_size`` < 1; "batch" for a model without BN layers
            or with batch_size < 2.
        TypeError: ``model`` not an ``nn.Module``; ``x`` not a floating-point tensor; ``y`` not an integer
            tensor; ``batch_size`` not an int.
        RuntimeError: the model cannot take ``x``, or its logits do not fit ``y`` (torch's error).
        ZeroDivisionError: nothing to evaluate (``x`` empty, or one example with "batch").
    """
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be 'running' (eval mode) or 'batch' (each test batch's own), got {statistics!r}")
    _check_model(model)
    _check_tensor(x, "x")
    _check_tensor(y, "y", floating=False)
    A.integer("batch_size", batch_size, minimum=1)
    bns = batchnorm_layers(model)
    if statistics == "batch" and (not bns or batch_size < 2):
        raise ValueError("statistics='batch' needs a model with BN layers and batch_size >= 2, got "
                         f"{len(bns)} BN layers and batch_size={batch_size}")
    correct, loss, count = 0, 0.0, 0
    with preserved_state(model):
        model.eval()
        if statistics == "batch":
            for bn in bns.values():
                bn.train()
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            if statistics == "batch" and len(xb) < 2:
                continue
            logits = model(xb)
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
            count += len(yb)
    return correct / count, loss / count


def with_population_statistics(model: nn.Module, x_stats: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                               batch_size: int = 60, num_images: int | None = None) -> tuple[float, float]:
    """Accuracy and loss on (x, y) after re-estimating BN's population statistics on ``x_stats``.

    A copy of ``model`` gets ``recompute_population_statistics(copy, x_stats, batch_size,
    num_images)`` and is evaluated with those statistics (eval mode); ``model`` is not changed.
    With training images this is Algorithm 2 ("precise BN"); with unlabelled test images of a
    shifted distribution it is the adaptation of Schneider et al. (2020), who re-estimate BN's
    statistics on the corrupted images (they also mix in the training statistics; not here).

    Returns: (accuracy, mean cross-entropy).

    Raises:
        ValueError: no BN layer in ``model``, ``batch_size`` < 2, too few images for one batch, or a
            model that cannot take ``x_stats`` (``recompute_population_statistics``); as ``evaluate``.
        TypeError: ``model`` not an ``nn.Module``; ``x_stats`` or ``x`` not a floating-point tensor;
            ``y`` not an integer tensor.
        RuntimeError, ZeroDivisionError: as ``evaluate``.
    """
    twin = copy.deepcopy(model)
    recompute_population_statistics(twin, x_stats, batch_size=batch_size, num_images=num_images)
    return evaluate(twin, x, y, statistics="running")


def final(fn: Callable[[nn.Module], Any]) -> Callable:
    """A ``fit`` probe that calls ``fn(model)`` at the end of training only (and at step 0, returning None).

    ``fit`` calls every probe once after the last step; with ``every`` set to a huge number
    it also calls it at step 0, where this probe returns None without calling ``fn``. Read the
    result as ``history.probes[name][-1]``. ``fn`` must leave the model unchanged (see ``evaluate``).

    Raises:
        TypeError: ``fn`` not callable.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of the model, e.g. final(lambda model: evaluate(model, x, y)); "
                        f"got {type(fn).__name__}.")

    def probe(ctx) -> Any:
        return None if ctx.step == 0 else fn(ctx.model)
    probe.every = 10 ** 12
    return probe
