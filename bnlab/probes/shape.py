"""The shape of a distribution: excess kurtosis per unit and of a whole layer's pooled values.

Batch normalization is an affine map per unit, z ↦ γ (z − μ_B)/σ_B + β, so it cannot
change the *shape* of any one unit's distribution (its skewness, its kurtosis); it can
change the shape of the *pooled* histogram of a layer, by giving every unit the same
mean and scale before γ and β (a mixture of Gaussians with different means and scales
has heavy tails; a mixture of aligned ones is Gaussian again).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["excess_kurtosis", "pooled_excess_kurtosis", "KurtosisProbe"]


def _as_units(z: torch.Tensor | np.ndarray) -> np.ndarray:
    a = z.detach().cpu().double().numpy() if isinstance(z, torch.Tensor) else np.asarray(z, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 4:
        raise ValueError(f"expected values of shape (N, C) with N >= 4 samples, got shape {a.shape}")
    return a


def excess_kurtosis(z: torch.Tensor | np.ndarray) -> np.ndarray:
    """Excess kurtosis E[(z − μ)⁴]/σ⁴ − 3 of each unit (column) over the batch.

    The population (biased) moment estimator, as ``scipy.stats.kurtosis(z, axis=0)``:
    0 for a Gaussian, −1.2 for a uniform, 3 for a Laplace distribution.

    Args: z: (N, C) values of C units on N examples.
    Returns: (C,) float64; NaN for a constant unit.

    Raises:
        ValueError: ``z`` not (N, C) with N >= 4, or not numbers.
    """
    a = _as_units(z)
    d = a - a.mean(axis=0)
    var = (d ** 2).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d ** 4).mean(axis=0) / var ** 2 - 3.0


def pooled_excess_kurtosis(z: torch.Tensor | np.ndarray) -> float:
    """Excess kurtosis of all N·C values of a layer pooled into one histogram.

    Args: z: (N, C) values of C units on N examples.
    Returns: a float (0 for a Gaussian histogram).

    Raises:
        ValueError: ``z`` not (N, C) with N >= 4, or not numbers.
    """
    return float(excess_kurtosis(_as_units(z).reshape(-1, 1))[0])


class KurtosisProbe:
    """``fit`` probe: per-unit and pooled excess kurtosis of the inputs of chosen modules on a fixed batch.

    For an activation module of ``bnlab.models.mlp`` the input is the pre-activation
    (BN's output when BN sits before the nonlinearity); for a norm module it is the
    Linear output that BN normalizes. The model is left untouched (``record_inputs``).

    Each call returns name → {"per_unit": (C,) array, "pooled": float} and, with
    ``keep_values``, "values": the (N, C) inputs as float32 (for histograms).

    Args:
        x: (N, ...) a fixed batch, e.g. ``probes.probe_batch(ds, 1000)``.
        modules: module names, e.g. ``["norm1", "act1", "act2", "act3"]``.
        every: run every this many steps (``fit`` also runs it once at the end).
        mode: "train" (BN uses the statistics of ``x``) or "eval" (running statistics).
        keep_values: also return the recorded inputs.

    Raises:
        ValueError: ``modules`` empty; ``every`` < 1 (or a string that is not a number). ``mode`` is
            checked at each call, which raises as ``record_inputs`` and ``excess_kurtosis``.
        TypeError: ``every`` not a number (e.g. None).
    """

    def __init__(self, x: torch.Tensor, modules: Sequence[str], every: int = 1000, mode: str = "train",
                 keep_values: bool = False) -> None:
        if not modules:
            raise ValueError("modules is empty: name at least one module, e.g. ['act1']")
        if int(every) < 1:
            raise ValueError(f"every must be a positive int, got {every}")
        self.x, self.modules, self.every, self.mode = x, list(modules), int(every), mode
        self.keep_values = keep_values

    def measure(self, model: torch.nn.Module) -> dict[str, dict[str, Any]]:
        """The measurement on ``model`` now (what each call records)."""
        from bnlab.probes.activations import record_inputs

        inputs = record_inputs(model, self.x, self.modules, mode=self.mode)
        out: dict[str, dict[str, Any]] = {}
        for n, z in inputs.items():
            z = z.flatten(1)
            out[n] = {"per_unit": excess_kurtosis(z), "pooled": pooled_excess_kurtosis(z)}
            if self.keep_values:
                out[n]["values"] = z.float().cpu().numpy()
        return out

    def __call__(self, ctx: Any) -> dict[str, dict[str, Any]]:
        return self.measure(ctx.model)
