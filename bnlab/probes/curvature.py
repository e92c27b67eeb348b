"""Curvature: the largest eigenvalue of the training-loss Hessian (the "sharpness").

Power iteration with Hessian-vector products: H v = ∇_θ (∇_θ L(θ) · v), computed by
double backward through the loss on one fixed batch (Pearlmutter 1994); the model is
never asked for its full Hessian. Gradient descent with step η on a quadratic is
stable only while the top eigenvalue λ_max < 2/η; Cohen et al. (2021, "Gradient
descent on neural networks typically occurs at the edge of stability") find that
full-batch GD drives λ_max up to 2/η and holds it there. Ghorbani, Krishnan & Xiao
(2019, "An investigation into neural net optimization via Hessian eigenvalue density")
report that BN removes the large isolated eigenvalues of the Hessian.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from bnlab import arguments as A
from bnlab.probes.core import LossOf, _check_loss_of, _check_tensor, batch_loss, preserved_state, _check_mode

__all__ = ["TopEigenvalue", "hessian_vector_product", "top_hessian_eigenvalue", "Sharpness"]


def hessian_vector_product(loss: torch.Tensor, params: Sequence[torch.Tensor],
                           vector: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """H v for the Hessian H of a scalar ``loss`` with respect to ``params``.

    Args:
        loss: a scalar built from ``params`` with a graph (not yet backpropagated).
        params: the tensors θ (each ``requires_grad``).
        vector: v, one tensor per parameter, shaped like it.

    Returns:
        H v as one tensor per parameter (zeros where the loss does not depend on a parameter).
    """
    params, vector = list(params), list(vector)
    if len(vector) != len(params) or any(not isinstance(v, torch.Tensor) or v.shape != p.shape
                                         for v, p in zip(vector, params)):
        raise ValueError(f"vector must hold one tensor shaped like each parameter: params have shapes "
                         f"{[tuple(p.shape) for p in params]}, vector has "
                         f"{[tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in vector]}.")
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss must be a scalar tensor (e.g. loss_fn(model(x), y)), built with a graph.")
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    return _hvp(grads, params, vector)


def _hvp(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor],
         vector: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    out = [torch.zeros_like(p) for p in params]
    if live:
        hv = torch.autograd.grad([grads[i] for i in live], [params[i] for i in live],
                                 grad_outputs=[vector[i] for i in live], retain_graph=True, allow_unused=True)
        for i, h in zip(live, hv):
            if h is not None:
                out[i] = h
    return tuple(out)


@dataclass
class TopEigenvalue:
    """Result of ``top_hessian_eigenvalue``.

    Attributes:
        value: the estimate of λ_max, the Rayleigh quotient vᵀHv of the last unit vector v
            (units of the loss per squared parameter unit).
        iterations: Hessian-vector products used.
        converged: the relative change of the estimate fell below ``tol``.
        vector: the eigenvector estimate, one tensor per parameter (unit norm overall).
    """

    value: float
    iterations: int
    converged: bool
    vector: tuple[torch.Tensor, ...]


def top_hessian_eigenvalue(model: nn.Module, loss_of: LossOf, iters: int = 20, tol: float = 1e-3,
                           mode: str = "train", seed: int = 0,
                           params: Sequence[torch.Tensor] | None = None) -> TopEigenvalue:
    """Largest eigenvalue of the Hessian of ``loss_of(model)`` by power iteration.

    Starts from a Gaussian unit vector (drawn from a generator seeded with ``seed``,
    so the same model gives the same answer) and iterates v ← Hv/‖Hv‖, estimating
    λ = vᵀHv, until the relative change of λ is below ``tol`` or after ``iters``
    products. Power iteration finds the eigenvalue of largest *magnitude*; for the
    training loss of a network this is the top (positive) one unless the negative
    curvature is larger, in which case the returned Rayleigh quotient is negative
    and says so. The model is left bit-identical (``preserved_state``): parameters,
    gradients, buffers such as BN's running statistics, train/eval flags, RNG states.

    Args:
        model: the network; its Hessian is taken with respect to ``params``
            (default: every parameter that requires a gradient).
        loss_of: model ↦ scalar loss on a fixed batch (e.g. ``batch_loss(loss_fn, x, y)``).
        iters: at most this many Hessian-vector products (≥ 1).
        tol: stop when |λ_k − λ_{k−1}| ≤ tol·|λ_k|.
        mode: "train" (BN uses the batch's statistics, the loss SGD descends) or "eval".
        seed: seeds the start vector.

    Returns:
        a ``TopEigenvalue``. Cost: one forward and backward with a graph, then one
        double-backward per iteration.
    """
    _check_mode(mode)
    A.integer("iters", iters, minimum=1)
    A.real("tol", tol, minimum=0)
    _check_loss_of(loss_of)
    with preserved_state(model):
        model.train(mode == "train")
        ps = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
        if not ps:
            raise ValueError("the model has no parameters that require a gradient: nothing to differentiate")
        gen = torch.Generator().manual_seed(seed)
        v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in ps]
        norm = torch.sqrt(sum((u * u).sum() for u in v))
        v = [u / norm for u in v]
        with torch.enable_grad():
            loss = loss_of(model)
            grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
            value, converged, k = float("nan"), False, 0
            for k in range(1, int(iters) + 1):
                hv = _hvp(grads, ps, v)
                new = float(sum((a * b).sum() for a, b in zip(v, hv)))        # Rayleigh quotient vᵀHv
                size = torch.sqrt(sum((h * h).sum() for h in hv))
                done = k > 1 and abs(new - value) <= tol * abs(new)
                value = new
                if not bool(size > 0) or not torch.isfinite(size):
                    break
                if done:
                    converged = True
                    break
                v = [h / size for h in hv]
        vector = tuple(u.detach().clone() for u in v)
    return TopEigenvalue(value=value, iterations=k, converged=converged, vector=vector)


class Sharpness:
    """``fit`` probe: the top Hessian eigenvalue of the training loss on one fixed batch.

    Every ``every`` steps (and at the end) it returns λ_max (a float) of
    ``loss_fn(model(x), y)`` with the model in train mode, as SGD sees it, via
    ``top_hessian_eigenvalue``; compare with 2/η, the stability threshold of
    gradient descent with step η (Cohen et al. 2021). The batch is fixed, so the
    series measures the landscape, not batch-to-batch noise.

    With ``batch_size`` the loss is the mean of the losses of consecutive batches of
    that size (each normalized by its own statistics in a BN net): the average loss
    SGD with that batch size descends, on fixed batches.

    Args:
        x: (B, ...) inputs, y: (B,) labels of the fixed batch (e.g. 600 training images).
        every: probe period in steps (None: ``fit``'s ``probe_every``).
        batch_size: split (x, y) into consecutive batches of this size (B must be a multiple
            of it); None: one batch of B.
        iters, tol, mode, seed: as ``top_hessian_eigenvalue``.

    Raises:
        ValueError: x and y differ in length, B is not a multiple of ``batch_size``, or a bad ``mode``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, every: int | None = None, batch_size: int | None = None,
                 iters: int = 20, tol: float = 1e-3, mode: str = "train", seed: int = 0) -> None:
        _check_mode(mode)
        _check_tensor(x, "x")
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch tensor, got {type(y).__name__}.")
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        A.integer("iters", iters, minimum=1)
        A.real("tol", tol, minimum=0)
        if batch_size is not None and (batch_size < 1 or len(x) % batch_size):
            raise ValueError(f"batch_size={batch_size} must divide the {len(x)} examples of the fixed batch")
        self.x, self.y, self.batch_size = x, y, batch_size
        if every is not None:
            self.every = int(every)
        self.iters, self.tol, self.mode, self.seed = iters, tol, mode, seed

    def __call__(self, ctx) -> float:
        x, y = self.x.to(ctx.x.device), self.y.to(ctx.x.device)
        if self.batch_size is None:
            loss_of = batch_loss(ctx.loss_fn, x, y)
        else:
            xs, ys = x.split(self.batch_size), y.split(self.batch_size)
            loss_of = lambda model: sum(ctx.loss_fn(model(a), b) for a, b in zip(xs, ys)) / len(xs)
        result = top_hessian_eigenvalue(ctx.model, loss_of, iters=self.iters, tol=self.tol, mode=self.mode,
                                        seed=self.seed)
        return result.value
