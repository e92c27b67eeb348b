"""The normalization layers by name: what ``make_norm`` and ``bnlab.models.mlp(norm=...)`` accept."""
from __future__ import annotations

import math
from typing import Callable

from torch import nn

from bnlab.layers.alternatives import GroupNorm, LayerNorm, LpNorm
from bnlab.layers.batchnorm import BatchNorm
from bnlab.layers.controls import DriftingBatchNorm, NoiseInjection, NoisyBatchNorm
from bnlab.layers.variants import VARIANT_KINDS, GhostBatchNorm

__all__ = ["make_norm", "NORM_KINDS", "norm_kinds"]


def _group_norm(num_features: int, num_groups: int | None = None, **kw) -> nn.Module:
    groups = num_groups if num_groups is not None else math.gcd(num_features, 32)
    return GroupNorm(groups, num_features, **kw)


NORM_KINDS: dict[str, Callable[..., nn.Module]] = {
    "bn": BatchNorm,
    "torch_bn": nn.BatchNorm1d,  # torch's own layer, for comparisons with "bn"
    "ln": lambda num_features, **kw: LayerNorm(num_features, **kw),
    "gn": _group_norm,
    "noisy_bn": NoisyBatchNorm,  # BN + Santurkar et al.'s Algorithm 1 noise
    "ghost_bn": GhostBatchNorm,  # BN over virtual batches (Hoffer et al. 2017): norm_kwargs={"virtual_batch_size": v}
    "noise": NoiseInjection,  # the same noise without BN (plain-net control)
    "drift_bn": DriftingBatchNorm,  # BN + a slow systematic drift of each unit's offset (control)
    "l1": lambda num_features, **kw: LpNorm(num_features, p=1, **kw),
    "l2": lambda num_features, **kw: LpNorm(num_features, p=2, **kw),
    "linf": lambda num_features, **kw: LpNorm(num_features, p=math.inf, **kw),
    **VARIANT_KINDS,  # BN taken apart (notebook 09): bn_detached, bn_reestimated, bn_frozen, bn_mean, bn_scale
}

def norm_kinds() -> list[str]:
    """Names accepted by ``make_norm`` and ``mlp(norm=...)``."""
    return sorted(NORM_KINDS)


def make_norm(kind: str, num_features: int, **kwargs) -> nn.Module:
    """Build the normalization layer named ``kind`` for ``num_features`` channels.

    Kinds: "bn" (bnlab.layers.BatchNorm), "torch_bn" (nn.BatchNorm1d), "ln"
    (bnlab.layers.LayerNorm), "gn" (bnlab.layers.GroupNorm, ``num_groups`` defaults to gcd(C, 32)), and
    the others listed by ``norm_kinds()``. Extra keyword arguments go to the layer.

    Raises:
        ValueError: an unknown ``kind`` (see ``norm_kinds()``), or a setting the layer refuses.
        TypeError: a keyword argument the layer does not take, or one of the wrong type.
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
    raise ValueError(f"unknown norm kind {kind!r}: choose one of {norm_kinds()} or None.")
