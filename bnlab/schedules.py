"""Learning-rate schedules for ``fit(lr_schedule=...)`` and reading where a rising rate fails."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from bnlab.train import History

__all__ = ["doubling", "failure_point"]


def doubling(every: int) -> Callable[[int], float]:
    """The factor 2^⌊t / every⌋: the learning rate doubles every ``every`` steps.

    Use as ``fit(..., lr=lr0, lr_schedule=doubling(200))`` for a rising-learning-rate
    stress test (update t uses lr0 · 2^⌊t/200⌋), the test of Bjorck et al. (2018, §3)
    and of public reproductions that raise the rate until the loss explodes.

    Raises:
        ValueError: ``every`` is not a positive int.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int (steps per doubling), got {every!r}")

    def factor(step: int) -> float:
        return 2.0 ** (step // every)
    return factor


def failure_point(history: "History", schedule: Callable[[int], float], threshold: float = math.log(10),
                  window: int = 50) -> tuple[int, float]:
    """Where a run under a rising learning rate failed: (step, learning rate in force there).

    Failure is the first of: the step at which ``fit`` flagged divergence (a non-finite loss,
    or one above its ``diverge_above``), and the first step at which the mean training loss
    over the last ``window`` steps exceeds ``threshold`` (default ln 10 ≈ 2.303: no better
    than guessing among 10 classes; the first ``window − 1`` steps are not eligible).

    Args:
        history: the ``History`` of ``fit(..., lr=lr0, lr_schedule=schedule)``.
        schedule: the factor the run used (e.g. ``doubling(200)``).
        threshold: the loss that counts as failed. window: steps averaged.

    Returns:
        (step, lr0 · schedule(step)); (T, nan) if the run never failed within its T steps.

    Raises:
        ValueError: an empty loss curve or ``window`` < 1.
    """
    loss = np.asarray(history.train_loss, dtype=np.float64).ravel()
    if loss.size == 0:
        raise ValueError("the history has no training loss: nothing to read a failure from")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    candidates = [] if history.diverged_at is None else [int(history.diverged_at)]
    finite = np.where(np.isfinite(loss), loss, np.inf)
    if loss.size >= window:
        means = np.convolve(finite, np.ones(window) / window, mode="valid")   # mean of steps t−window+1..t
        over = np.nonzero(~(means <= threshold))[0]
        if over.size:
            candidates.append(int(over[0]) + window - 1)
    if not candidates:
        return loss.size, float("nan")
    step = min(candidates)
    return step, float(history.config["lr"] * schedule(step))
