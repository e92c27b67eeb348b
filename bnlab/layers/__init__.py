"""Normalization layers written from tensor operations, and the registry ``mlp`` uses.

Every layer takes (N, C) or (N, C, H, W) input (also (N, C, L)), as ``nn.BatchNorm1d``/
``nn.BatchNorm2d`` do, and normalizes per channel C. One module per role:

- ``batchnorm``: ``BatchNorm`` and ``batchnorm_train`` (Ioffe & Szegedy 2015, Algorithms 1 and 2);
- ``variants``: BN taken apart (notebook 09: detached, re-estimated, frozen, mean-only,
  scale-only statistics) and ghost batch norm (Hoffer et al. 2017);
- ``controls``: Santurkar et al.'s (2018) noisy BN, the same noise without BN, a drifting BN;
- ``alternatives``: ℓp normalization, ``LayerNorm``, ``GroupNorm``;
- ``population``: ``batchnorm_layers``, ``recompute_population_statistics`` (Algorithm 2);
- ``registry``: ``make_norm``, ``norm_kinds``, ``NORM_KINDS`` (the names ``mlp(norm=...)`` accepts).
"""
from bnlab.layers.alternatives import GroupNorm, LayerNorm, LpNorm
from bnlab.layers.batchnorm import BatchNorm, batchnorm_train
from bnlab.layers.controls import DriftingBatchNorm, NoiseInjection, NoisyBatchNorm, algorithm1_noise
from bnlab.layers.population import batchnorm_layers, is_batchnorm, recompute_population_statistics
from bnlab.layers.registry import NORM_KINDS, make_norm, norm_kinds
from bnlab.layers.variants import (DetachedBatchNorm, FrozenBatchNorm, GhostBatchNorm, MeanOnlyBatchNorm,
                                   ReestimatedBatchNorm, ScaleOnlyBatchNorm)

__all__ = ["BatchNorm", "batchnorm_train", "DetachedBatchNorm", "ReestimatedBatchNorm", "FrozenBatchNorm",
           "MeanOnlyBatchNorm", "ScaleOnlyBatchNorm", "GhostBatchNorm", "NoisyBatchNorm", "NoiseInjection",
           "DriftingBatchNorm", "algorithm1_noise", "LpNorm", "LayerNorm", "GroupNorm",
           "batchnorm_layers", "is_batchnorm", "recompute_population_statistics", "make_norm", "norm_kinds", "NORM_KINDS"]
