"""Summaries of probe series over training: drift, jitter, window means, the typical unit."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def drift(series: np.ndarray) -> np.ndarray:
    """How far a quantity wandered from its starting value: max_t |s_t − s_0| over axis 0.

    Args: series (K, ...) e.g. the median input of every unit at K probe steps, (K, C).
    Returns: (...) e.g. (C,) one drift per unit.

    Raises:
        ValueError: ``series`` has no step along axis 0.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim == 0 or s.shape[0] == 0:
        raise ValueError(f"series must have at least one step along axis 0, got shape {s.shape}")
    return np.max(np.abs(s - s[:1]), axis=0)


def jitter(series: np.ndarray) -> np.ndarray:
    """How much a quantity jumps between consecutive probes: mean_t |s_{t+1} − s_t| over axis 0.

    ``drift`` measures how far a quantity wandered; ``jitter`` how restless it is
    from one probe to the next (noisy BN: small drift of the mean, large jitter).

    Args: series (K, ...) e.g. the median input of every unit at K ≥ 2 probe steps, (K, C).
    Returns: (...) e.g. (C,) one mean step-to-step change per unit.

    Raises:
        ValueError: ``series`` has fewer than two steps along axis 0.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim == 0 or s.shape[0] < 2:
        raise ValueError(f"series needs at least two steps along axis 0, got shape {s.shape}")
    return np.abs(np.diff(s, axis=0)).mean(axis=0)


def unit_drifts(steps: np.ndarray, percentiles: np.ndarray, upto: int | None = None,
                which: int = 1) -> np.ndarray:
    """Drift of one percentile of every unit's input over the probes at steps ≤ ``upto``.

    Args:
        steps: (K,) probe steps, e.g. the first output of ``History.probe("act3")``.
        percentiles: (K, P, C) the recorded percentiles of ``InputPercentiles``
            (P percentiles, default 15/50/85, of C units), the second output of ``History.probe``.
        upto: last step included (None = all probes).
        which: index into the P percentiles (1 = the median of the default 15/50/85).
    Returns: (C,) ``drift`` of that percentile of each unit.

    Raises:
        ValueError: ``steps`` is not (K,) with ``percentiles`` (K, P, C); ``which`` is not a recorded
            percentile; no probe at or before ``upto``.
    """
    s, p = np.asarray(steps), np.asarray(percentiles, dtype=float)
    if p.ndim != 3 or s.shape != (p.shape[0],):
        raise ValueError(f"need steps (K,) and percentiles (K, P, C); got {s.shape} and {p.shape}")
    if not 0 <= which < p.shape[1]:
        raise ValueError(f"which={which} is not one of the {p.shape[1]} recorded percentiles")
    keep = s <= upto if upto is not None else np.ones(len(s), dtype=bool)
    if not keep.any():
        raise ValueError(f"no probe at or before step {upto}; first probe at step {s[0] if len(s) else None}")
    return drift(p[keep, which, :])


def typical_unit(drifts: np.ndarray) -> int:
    """Index of the "typical" unit: the one whose drift is the median over units.

    Args: drifts (C,) e.g. from ``unit_drifts``. For even C, the upper of the two middle units.
    Returns: the unit index (ties broken by a stable sort, so the result is deterministic).

    Raises:
        ValueError: ``drifts`` is not a non-empty 1-d array.
    """
    d = np.asarray(drifts, dtype=float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError(f"drifts must be a non-empty 1-d array (one per unit), got shape {d.shape}")
    return int(np.argsort(d, kind="stable")[len(d) // 2])


def window_means(steps: Sequence[int], values: Sequence[float], checkpoints: Sequence[int],
                 window: int) -> np.ndarray:
    """Mean of a probe's values over the ``window`` steps up to each checkpoint.

    One landscape probe looks at one minibatch and is noisy; averaging the probes in
    (c − window, c] gives a stable value per checkpoint c.

    Args:
        steps: (T,) the probe steps. values: (T,) one value per probe step.
        checkpoints: (C,) steps c. window: width of the averaging window in steps.

    Returns:
        (C,) the means; a ValueError if a window holds no probe.

    Raises:
        ValueError: ``steps`` and ``values`` are not 1-d of the same length, ``window`` <= 0, or a
            window holds no probe.
    """
    steps_a, values_a = np.asarray(steps), np.asarray(values, dtype=float)
    if steps_a.shape != values_a.shape or steps_a.ndim != 1:
        raise ValueError(f"steps and values must be 1-D of the same length, got {steps_a.shape} and {values_a.shape}")
    if int(window) < 1:
        raise ValueError(f"window must be a positive number of steps, got {window}")
    out = []
    for c in checkpoints:
        inside = (steps_a > c - window) & (steps_a <= c)
        if not inside.any():
            raise ValueError(f"no probe in the window ({c - window}, {c}]: probe more often or widen the window")
        out.append(values_a[inside].mean())
    return np.asarray(out)


