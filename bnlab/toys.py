"""Small closed-form toys that isolate one mechanism (NumPy, float64, runs in milliseconds).

``drifting_input_toy``: one linear layer learns a fixed mapping while an upstream layer keeps
moving the mean and scale of its input, the situation Ioffe & Szegedy (2015, §1-2) call internal
covariate shift, with and without standardising that input per unit over the batch (BN without
γ, β). Used by notebook 04.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DriftToy", "upstream_statistics", "drifting_input_toy"]


@dataclass
class DriftToy:
    """One run of ``drifting_input_toy``.

    Attributes:
        loss: (steps,) training loss ½·mean((ŷ − y)²) on each step's batch, before that step's update.
        excess: (steps,) expected loss of the layer at step t (before the update) on the input distribution
            of step t, minus the noise floor noise²/2, in closed form: ½(‖w ⊙ a_t − w*‖² + (wᵀc_t + b − b*)²)
            for the raw input, ½(‖w − w*‖² + (b − b*)²) for the standardised one evaluated with the
            population statistics (as BN does in eval mode). No sampling noise: 0 only at the optimum.
        distance: (steps,) ‖(w, b) − (w°_t, b°_t)‖₂, how far the layer's parameters are from the
            optimum for the input it sees at step t (before the update): (w*/a_t, b* − Σ_j w*_j c_tj / a_tj)
            for the raw input, (w*, b*) for the standardised one.
        optimum_moves: (steps,) ‖θ°_{t+1} − θ°_t‖₂, how far that optimum moved between steps t and t+1
            (0 for the standardised input and for a static upstream layer).
        config: the arguments of the run.
    """

    loss: np.ndarray
    excess: np.ndarray
    distance: np.ndarray
    optimum_moves: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    def mean_excess(self, start: int = 0, stop: int | None = None) -> float:
        """Mean excess loss over steps [start, stop)."""
        return float(self.excess[start:stop].mean())


def upstream_statistics(t: int | np.ndarray, mean_amplitude: float, scale_amplitude: float, period: float,
                        phases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale a_t and offset c_t of the upstream layer's output at step t.

    Unit j's output is h_j = a_tj·z_j + c_tj with z_j ~ N(0, 1), where
    c_tj = mean_amplitude · sin(2πt/period + φ_j) and a_tj = exp(scale_amplitude · sin(2πt/period + ψ_j)):
    each unit's mean and (log) scale oscillate with its own phase, so the input keeps moving and never settles.

    Args:
        t: a step (int) or steps (T,). phases: (2, d) the phases φ (row 0) and ψ (row 1).

    Returns:
        a_t, c_t, each (d,) for an int t or (T, d) for steps (T,).
    """
    t = np.asarray(t, dtype=float)[..., None]
    angle = 2 * np.pi * t / period
    return (np.exp(scale_amplitude * np.sin(angle + phases[1])),
            mean_amplitude * np.sin(angle + phases[0]))


def drifting_input_toy(steps: int = 2_000, lr: float = 0.05, mean_amplitude: float = 0.0,
                       scale_amplitude: float = 0.0, period: float = 500.0, moving: bool = True,
                       standardize: bool = False, dim: int = 10, batch_size: int = 60, noise: float = 0.1,
                       eps: float = 1e-8, seed: int = 0) -> DriftToy:
    """Train one linear layer with SGD while the layer below it keeps shifting its input.

    The upper layer predicts y = w*ᵀz + b* + noise (fixed w* ~ N(0, I/d), b* = 0.5) from the upstream
    layer's output h_t = a_t ⊙ z + c_t (``upstream_statistics``), by ŷ = wᵀx + b with x = h_t (raw) or
    x = (h_t − mean_B h_t) / sqrt(var_B h_t + eps) per unit over the batch (``standardize``, BN's
    normalization step without γ, β: the layer's own w, b play their role). Loss ½·mean over the
    batch of (ŷ − y)², plain SGD from w = 0, b = 0.

    For the raw input the layer's optimum is w° = w*/a_t, b° = b* − Σ_j w*_j c_tj / a_tj: it moves whenever
    the upstream statistics move, so SGD must chase it. Standardising over the batch removes a_t and c_t
    exactly (up to eps): (a z + c − mean_B(a z + c)) / std_B(a z + c) = (z − mean_B z) / std_B z for a > 0, so
    the standardised runs are the same for every drift amplitude. It removes only that: a change of
    the upstream layer that is not a per-unit shift and rescaling (a rotation of z, a change of shape)
    would still move the optimum.

    Args:
        steps: SGD steps. lr: learning rate. dim: d, the number of input units. batch_size: B.
        mean_amplitude, scale_amplitude: how far each unit's mean (in units of z's std) and log scale swing.
        period: steps per oscillation of the upstream statistics.
        moving: False freezes the upstream statistics at their step-0 values (a shifted but static input:
            the same start, no drift), which separates the cost of a badly centred input from the cost
            of tracking a moving one.
        standardize: standardise the input per unit over the batch.
        noise: standard deviation of the label noise (the loss floor is noise²/2).
        eps: added to the batch variance. seed: the seed of w*, the phases and every batch.

    Returns:
        a ``DriftToy`` with the loss, the distance to the current optimum and the optimum's movement per step.

    Raises:
        ValueError: for a non-positive steps, lr, dim, period, or a batch_size below 2.
    """
    for name, value in (("steps", steps), ("lr", lr), ("dim", dim), ("period", period)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (standardising needs a batch variance), got {batch_size}")
    if mean_amplitude < 0 or scale_amplitude < 0 or noise < 0:
        raise ValueError("mean_amplitude, scale_amplitude and noise must be non-negative, got "
                         f"{mean_amplitude}, {scale_amplitude}, {noise}")
    config = dict(steps=steps, lr=lr, mean_amplitude=mean_amplitude, scale_amplitude=scale_amplitude, period=period,
                  moving=moving, standardize=standardize, dim=dim, batch_size=batch_size, noise=noise, eps=eps,
                  seed=seed)
    rng = np.random.default_rng(seed)
    w_star = rng.normal(0.0, 1.0 / np.sqrt(dim), dim)
    b_star = 0.5
    phases = rng.uniform(0.0, 2 * np.pi, (2, dim))
    times = np.arange(steps + 1) if moving else np.zeros(steps + 1)
    scale, offset = upstream_statistics(times, mean_amplitude, scale_amplitude, period, phases)   # (steps + 1, d)
    if standardize:
        optimum = np.tile(np.append(w_star, b_star), (steps + 1, 1))
    else:
        optimum = np.column_stack([w_star / scale, b_star - (w_star * offset / scale).sum(axis=1)])
    w, b = np.zeros(dim), 0.0
    loss, excess, distance = np.empty(steps), np.empty(steps), np.empty(steps)
    for t in range(steps):
        z = rng.standard_normal((batch_size, dim))
        y = z @ w_star + b_star + noise * rng.standard_normal(batch_size)
        x = scale[t] * z + offset[t]
        if standardize:
            x = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
        r = x @ w + b - y
        loss[t] = 0.5 * np.mean(r ** 2)
        distance[t] = np.linalg.norm(np.append(w, b) - optimum[t])
        if standardize:
            excess[t] = 0.5 * (np.sum((w - w_star) ** 2) + (b - b_star) ** 2)
        else:
            excess[t] = 0.5 * (np.sum((w * scale[t] - w_star) ** 2) + (w @ offset[t] + b - b_star) ** 2)
        w = w - lr * (x.T @ r) / batch_size
        b = b - lr * r.mean()
    moves = np.linalg.norm(np.diff(optimum, axis=0), axis=1)
    return DriftToy(loss=loss, excess=excess, distance=distance, optimum_moves=moves, config=config)
