"""Learning-rate schedules for ``fit(lr_schedule=...)`` and reading where a rising rate fails."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from bnlab.train import History

__all__ = ["doubling", "learning_start", "failure_point"]


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


def _window_means(history: "History", window: int) -> np.ndarray:
    loss = np.asarray(history.train_loss, dtype=np.float64).ravel()
    if loss.size == 0:
        raise ValueError("the history has no training loss: nothing to read a failure from")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1 (steps averaged), got {window!r}")
    if loss.size < window:
        return np.empty(0)
    finite = np.where(np.isfinite(loss), loss, np.inf)
    return np.convolve(finite, np.ones(window) / window, mode="valid")   # entry i: mean of steps i..i+window−1


def learning_start(history: "History", below: float = 2.0, window: int = 50) -> int | None:
    """The first step at which the mean training loss over the last ``window`` steps is below ``below``.

    The step from which a run counts as having started to learn (default 2.0: 13 % under
    the chance loss ln 10 ≈ 2.303 of 10 classes, far outside the step-to-step noise of a
    ``window``-step mean on a plateau at chance). ``None`` if it never got there.

    Raises:
        ValueError: an empty loss curve or ``window`` < 1.
    """
    means = _window_means(history, window)
    hit = np.nonzero(means < below)[0]
    return int(hit[0]) + window - 1 if hit.size else None


def failure_point(history: "History", schedule: Callable[[int], float], threshold: float = math.log(10),
                  window: int = 50, learned_below: float | None = 2.0) -> tuple[int, float]:
    """Where a run under a rising learning rate failed: (step, learning rate in force there).

    Failure is the first of: the step at which ``fit`` flagged divergence (a non-finite loss,
    or one above its ``diverge_above``), and the first step at which the mean training loss
    over the last ``window`` steps exceeds ``threshold`` (default ln 10 ≈ 2.303: no better
    than guessing among 10 classes) *after the run has started to learn*, i.e. after the
    first step at which that mean fell below ``learned_below`` (``learning_start``). A run
    that is still on its initial plateau at small rates (a slow start, e.g. a saturated
    sigmoid net) has not broken down, so its plateau is not counted as a failure;
    ``learned_below=None`` counts every window above ``threshold`` (the first ``window − 1``
    steps are never eligible). A flagged divergence counts whenever it happens.

    Args:
        history: the ``History`` of ``fit(..., lr=lr0, lr_schedule=schedule)``.
        schedule: the factor the run used (e.g. ``doubling(200)``).
        threshold: the loss that counts as failed. window: steps averaged.
        learned_below: the window mean below which a run has started to learn (must be
            ≤ ``threshold``), or None.

    Returns:
        (step, lr0 · schedule(step)); (T, nan) if the run never failed within its T steps,
        including a run that never started to learn and never diverged (tell the two apart
        with ``learning_start``).

    Raises:
        ValueError: an empty loss curve, ``window`` < 1, or ``learned_below`` > ``threshold``.
    """
    if learned_below is not None and learned_below > threshold:
        raise ValueError(f"learned_below ({learned_below}) must be <= threshold ({threshold}): a run must first "
                         "get below the failure line before it can fail by crossing it")
    means = _window_means(history, window)
    candidates = [] if history.diverged_at is None else [int(history.diverged_at)]
    first = 0
    if learned_below is not None:
        start = learning_start(history, learned_below, window)
        first = means.size if start is None else start - window + 1
    over = np.nonzero(~(means[first:] <= threshold))[0]
    if over.size:
        candidates.append(int(over[0]) + first + window - 1)
    if not candidates:
        return int(np.asarray(history.train_loss).size), float("nan")
    step = min(candidates)
    return step, float(history.config["lr"] * schedule(step))
