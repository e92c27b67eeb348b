"""Loss-landscape measures along the gradient (Santurkar et al. 2018, §3.1, Fig. 4)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from bnlab.probes.core import LossOf, _check_loss_of, batch_loss, check_every, preserved_state




DEFAULT_STEP_MULTIPLIERS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""Step sizes of the landscape probes, in units of the learning rate (η = c · lr)."""

def _loss_and_grad(model: nn.Module, loss_of: LossOf, params: list[nn.Parameter],
                   rng: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Loss and flattened gradient (P,), with torch's RNG reset to ``rng`` first (same noise every call)."""
    torch.set_rng_state(rng)
    loss = loss_of(model)
    if loss.ndim != 0:
        raise ValueError(f"the loss must be a scalar tensor, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])
    return float(loss.detach()), flat.detach()


@dataclass
class Landscape:
    """The loss landscape along the gradient at one point w (Santurkar et al. 2018, Sec. 3.1, Fig. 4).

    With g = ∇L(w) on a fixed batch and step sizes η_k (k = 1..K):

    Attributes:
        etas: (K,) the step sizes η_k.
        loss: L(w).
        losses: (K,) L(w − η_k g).
        grad_norm: ‖g‖₂ over all trainable parameters.
        grad_change: (K,) ‖∇L(w − η_k g) − g‖₂.
        step: the training step it was taken at (-1 if unknown).
    """

    etas: np.ndarray
    loss: float
    losses: np.ndarray
    grad_norm: float
    grad_change: np.ndarray
    step: int = -1

    @property
    def loss_range(self) -> float:
        """max_k L(w − η_k g) − min_k L(w − η_k g): how much the loss varies along the step."""
        return float(np.max(self.losses) - np.min(self.losses))

    @property
    def predictiveness(self) -> float:
        """max_k ‖∇L(w − η_k g) − g‖ (smaller: the gradient predicts the gradient nearby better)."""
        return float(np.max(self.grad_change))

    @property
    def relative_predictiveness(self) -> float:
        """``predictiveness`` / ‖g‖: gradient change relative to the gradient itself."""
        return self.predictiveness / max(self.grad_norm, 1e-30)

    @property
    def beta_per_eta(self) -> np.ndarray:
        """(K,) ‖∇L(w − η_k g) − g‖ / ‖η_k g‖: the gradient's Lipschitz ratio over each step."""
        return self.grad_change / np.maximum(self.etas * self.grad_norm, 1e-30)

    @property
    def beta_smoothness(self) -> float:
        """Effective β-smoothness: max_k ‖∇L(w − η_k g) − g‖ / ‖η_k g‖."""
        return float(np.max(self.beta_per_eta))


def landscape(model: nn.Module, loss_of: LossOf, lr: float,
              multipliers: Sequence[float] = DEFAULT_STEP_MULTIPLIERS, train_mode: bool = True,
              step: int = -1) -> Landscape:
    """Probe the loss along the gradient direction at the model's current weights w.

    Computes g = ∇L(w), then L(w − ηg) and ∇L(w − ηg) for η = c · lr, c in ``multipliers``,
    all on the same batch (``loss_of`` must evaluate the same data every call) and with the
    same random draws (torch's RNG is reset before every evaluation, so a noisy layer sees
    the same noise at every point). BN layers are probed in train mode (batch statistics)
    when ``train_mode``. The model's parameters, buffers (running statistics), gradients,
    modes and every RNG state are bit-identical afterwards.

    Args:
        model: the network; every parameter with ``requires_grad`` is part of w.
        loss_of: model → scalar loss on a fixed batch (``batch_loss(loss_fn, x, y)``, or a
            full-batch loss such as the deep linear network's).
        lr: the learning rate the step sizes are multiples of.
        multipliers: (K,) positive step-size multipliers, default (0.5, 1, 2, 4).
        train_mode: put the model in train mode for the probe (restored afterwards).
        step: the training step, stored in the result.

    Returns:
        a ``Landscape`` (losses (K,), gradient changes (K,), and the derived measures).

    Raises:
        TypeError: ``loss_of`` is not callable, or ``model`` is not an ``nn.Module``.
        ValueError: ``lr`` <= 0; ``multipliers`` empty or not all positive; the model has no
            trainable parameters; ``loss_of`` does not return a scalar.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    _check_loss_of(loss_of)
    mult = np.asarray(list(multipliers), dtype=float)
    if mult.ndim != 1 or len(mult) == 0 or not np.all(mult > 0):
        raise ValueError(f"multipliers must be a non-empty sequence of positive numbers, got {multipliers!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters to probe")
    etas = mult * lr
    with preserved_state(model):
        if train_mode:
            model.train()
        rng = torch.get_rng_state()
        start = [p.detach().clone() for p in params]
        loss0, g = _loss_and_grad(model, loss_of, params, rng)
        losses, changes = [], []
        for eta in etas:
            with torch.no_grad():
                offset = 0
                for p, p0 in zip(params, start):
                    n = p.numel()
                    p.copy_(p0 - float(eta) * g[offset:offset + n].view_as(p))
                    offset += n
            loss_k, g_k = _loss_and_grad(model, loss_of, params, rng)
            losses.append(loss_k)
            changes.append(float(torch.linalg.vector_norm(g_k - g)))
    return Landscape(etas=etas, loss=loss0, losses=np.asarray(losses), grad_norm=float(torch.linalg.vector_norm(g)),
                     grad_change=np.asarray(changes), step=step)


def landscape_probe(every: int = 100, multipliers: Sequence[float] = DEFAULT_STEP_MULTIPLIERS,
                    train_mode: bool = True) -> Callable[[Any], Landscape]:
    """A ``fit`` probe taking ``landscape`` on the step's batch every ``every`` steps.

    ``fit(..., probes={"landscape": landscape_probe(every=100)})``; the returned function
    reads a ``bnlab.train.ProbeContext`` (model, x, y, lr, loss_fn, step) and has an ``every``
    attribute that ``fit`` honours. Stack its records with ``stack_landscapes``.

    Raises:
        TypeError: ``every`` is not an int.
        ValueError: ``every`` < 1.
    """
    every = check_every(every)
    mult = tuple(float(c) for c in multipliers)

    def probe(ctx: Any) -> Landscape:
        return landscape(ctx.model, batch_loss(ctx.loss_fn, ctx.x, ctx.y), ctx.lr, mult,
                         train_mode=train_mode, step=int(ctx.step))

    probe.every = every  # type: ignore[attr-defined]
    return probe


def stack_landscapes(records: Sequence[Landscape]) -> dict[str, np.ndarray]:
    """Stack T ``Landscape`` records (one run) into arrays for plotting.

    Returns a dict with "step" (T,), "etas" (K,), "loss" (T,), "losses" (T, K), "grad_norm" (T,),
    "grad_change" (T, K), "relative_grad_change" (T, K), "beta" (T, K), and the per-step
    summaries "loss_range", "predictiveness", "relative_predictiveness", "beta_smoothness" (T,).

    Raises:
        ValueError: ``records`` is empty.
    """
    if len(records) == 0:
        raise ValueError("no landscape records to stack")
    grad_norm = np.array([r.grad_norm for r in records])
    change = np.stack([r.grad_change for r in records])
    return {
        "step": np.array([r.step for r in records]),
        "etas": np.asarray(records[0].etas),
        "loss": np.array([r.loss for r in records]),
        "losses": np.stack([r.losses for r in records]),
        "grad_norm": grad_norm,
        "grad_change": change,
        "relative_grad_change": change / np.maximum(grad_norm, 1e-30)[:, None],
        "beta": np.stack([r.beta_per_eta for r in records]),
        "loss_range": np.array([r.loss_range for r in records]),
        "predictiveness": np.array([r.predictiveness for r in records]),
        "relative_predictiveness": np.array([r.relative_predictiveness for r in records]),
        "beta_smoothness": np.array([r.beta_smoothness for r in records]),
    }


# Santurkar et al. (2018), Theorem 4.1: the BN gradient-norm bound, checked per unit.
