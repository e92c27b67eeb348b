"""Measurements taken on a model during training (usable as ``fit`` probes).

Sections: activation statistics (percentiles of a nonlinearity's input,
per-layer mean/std, saturation), gradient norms, internal covariate shift
(Santurkar et al. 2018, Def. 2.1) and loss-landscape measures.
"""
from __future__ import annotations

# ---------------------------------------------------------------- activation statistics

# ---------------------------------------------------------------- gradient norms

# ---------------------------------------------------------------- internal covariate shift

# ---------------------------------------------------------------- loss landscape
