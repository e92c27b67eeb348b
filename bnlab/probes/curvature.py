"""Curvature: the largest eigenvalues of the training-loss Hessian (the "sharpness").

Lanczos iteration on Hessian-vector products: H v = ∇_θ (∇_θ L(θ) · v), computed by
double backward through the loss on one fixed batch (Pearlmutter 1994); the model is
never asked for its full Hessian. Gradient descent with step η on a quadratic is
stable only while the top eigenvalue λ_max < 2/η; Cohen et al. (2021, "Gradient
descent on neural networks typically occurs at the edge of stability") find that
full-batch GD drives λ_max up to 2/η and holds it there (the criterion is for
full-batch gradient descent, not minibatch SGD). Ghorbani, Krishnan & Xiao
(2019, "An investigation into neural net optimization via Hessian eigenvalue density")
report that BN removes the large isolated (outlier) eigenvalues of the Hessian: seeing
outliers needs the top k eigenvalues, not λ_max alone. ``gradient_curvature`` gives the
curvature along the gradient, ‖Hg‖/‖g‖, the quantity Santurkar et al.'s effective
β-smoothness measures with finite steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from bnlab import arguments as A
from bnlab.probes.core import LossOf, _check_loss_of, _check_tensor, batch_loss, preserved_state, _check_mode

__all__ = ["TopEigenvalue", "HessianEigenvalues", "hessian_vector_product", "hessian_eigenvalues",
           "top_hessian_eigenvalue", "gradient_curvature", "Sharpness", "HessianSpectrum"]


def hessian_vector_product(loss: torch.Tensor, params: Sequence[torch.Tensor],
                           vector: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """H v for the Hessian H of a scalar ``loss`` with respect to ``params``.

    Args:
        loss: a scalar built from ``params`` with a graph (not yet backpropagated).
        params: the tensors θ (each ``requires_grad``).
        vector: v, one tensor per parameter, shaped like it.

    Returns:
        H v as one tensor per parameter (zeros where the loss does not depend on a parameter).

    Raises:
        ValueError: ``vector`` not one tensor shaped like each parameter; ``loss`` not a scalar tensor.
        RuntimeError: ``loss`` has no graph to ``params`` (built without gradients, or already
            backpropagated).
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
        value: the estimate of λ_max, the largest (algebraic, not largest-magnitude) eigenvalue,
            as the top Ritz value of the Lanczos iteration (units of the loss per squared parameter unit).
        iterations: Hessian-vector products used.
        converged: the Ritz residual ``residual`` fell below ``tol``·|value|.
        vector: the eigenvector estimate (Ritz vector), one tensor per parameter (unit norm overall).
        residual: ‖H y − θ y‖ for the Ritz pair (θ, y), a bound on the distance from θ to an
            eigenvalue of H (Parlett 1998, Theorem 4.5.1).
    """

    value: float
    iterations: int
    converged: bool
    vector: tuple[torch.Tensor, ...]
    residual: float = float("nan")


@dataclass
class HessianEigenvalues:
    """Result of ``hessian_eigenvalues``: the k largest eigenvalues of a Hessian, by Lanczos.

    Attributes:
        values: the k largest Ritz values, largest first (algebraic order: a negative
            eigenvalue of large magnitude is not among them unless fewer than k are larger).
            Fewer than k when the Krylov space was exhausted first (a Hessian with fewer
            distinct eigenvalues than k seen from the start vector).
        residuals: ‖H y_i − θ_i y_i‖ for each, a bound on the distance from θ_i to an eigenvalue.
        iterations: Hessian-vector products used (= the Lanczos steps).
        converged: every residual is at most ``tol``·max(|θ_1|, tiny).
        vectors: the Ritz vectors y_i, each one tensor per parameter (unit norm).
    """

    values: tuple[float, ...]
    residuals: tuple[float, ...]
    iterations: int
    converged: bool
    vectors: tuple[tuple[torch.Tensor, ...], ...]


def _flat(ts: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _unflat(v: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [u.view_as(p) for u, p in zip(torch.split(v, [p.numel() for p in like]), like)]


def _lanczos(matvec, start: torch.Tensor, k: int, iters: int, tol: float):
    """Lanczos with full reorthogonalization on a symmetric operator ``matvec`` (flat tensors).

    Returns (Ritz values largest first, residual bounds, Ritz vectors as flat tensors, steps,
    converged) for the top ``k``. Convergence: |β_j s_{j,i}| ≤ tol·max(|θ_1|, tiny) for each of
    the top k Ritz pairs (θ_i, s_i) of the tridiagonal T_j (Golub & Van Loan 2013, §10.1.4).
    """
    q = start / start.norm()
    basis, alphas, betas = [q], [], []
    theta = s = None
    steps, converged = 0, False
    for j in range(iters):
        w = matvec(basis[-1])
        steps += 1
        alpha = float(torch.dot(basis[-1].double(), w.double()))
        alphas.append(alpha)
        Q = torch.stack(basis)
        for _ in range(2):                                  # full reorthogonalization, twice ("twice is enough")
            w = w - Q.T @ (Q @ w)
        beta = float(w.norm())
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if len(betas):
            off = torch.tensor(betas, dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        theta, s = torch.linalg.eigh(t)                     # ascending
        theta, s = theta.flip(0), s.flip(1)                 # largest first
        top = min(k, len(theta))
        scale = max(abs(float(theta[0])), 1e-30)
        res = [abs(beta * float(s[-1, i])) for i in range(top)]
        exhausted = not (beta > 1e-12 * scale) or not torch.isfinite(w).all()
        if exhausted or (top == k and all(r <= tol * scale for r in res)):
            converged = bool(torch.isfinite(theta).all()) and (exhausted or top == k)
            break
        betas.append(beta)
        basis.append(w / beta)
    Q = torch.stack(basis[:len(alphas)])
    top = min(k, len(theta))
    vectors = [(s[:, i].to(Q.dtype) @ Q) for i in range(top)]
    return ([float(x) for x in theta[:top]], res[:top], vectors, steps, converged)


def _differentiated(model: nn.Module, mode: str, params: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    """Put ``model`` in ``mode`` and return the parameters to differentiate (inside ``preserved_state``)."""
    model.train(mode == "train")
    ps = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    if not ps:
        raise ValueError("the model has no parameters that require a gradient: nothing to differentiate")
    return ps


def hessian_eigenvalues(model: nn.Module, loss_of: LossOf, k: int = 1, iters: int = 20, tol: float = 1e-3,
                        mode: str = "train", seed: int = 0,
                        params: Sequence[torch.Tensor] | None = None) -> HessianEigenvalues:
    """The ``k`` largest eigenvalues of the Hessian of ``loss_of(model)``, by Lanczos iteration.

    Lanczos (Golub & Van Loan 2013, §10.1) on Hessian-vector products, with full
    reorthogonalization, from a Gaussian unit vector drawn with ``seed``: after j products
    the Ritz values (eigenvalues of the j × j tridiagonal matrix) approximate H's extreme
    eigenvalues, the largest first. Unlike power iteration, which converges to the
    eigenvalue of largest *magnitude* (possibly a negative one), these are the largest in
    value (what ``scipy.sparse.linalg.eigsh(..., which="LA")`` returns), and k > 1 shows
    whether the top is an isolated outlier (Ghorbani, Krishnan & Xiao 2019 count outliers
    this way). It stops when every one of the top k Ritz residuals ‖Hy − θy‖ is below
    ``tol``·|θ_1|, or after ``iters`` products. Lanczos finds each distinct eigenvalue once:
    multiplicities are not resolved. The model is left bit-identical (``preserved_state``).

    Args:
        model: the network; derivatives with respect to ``params`` (default: every parameter
            that requires a gradient).
        loss_of: model ↦ scalar loss on a fixed batch (e.g. ``batch_loss(loss_fn, x, y)``).
        k: how many of the largest eigenvalues (1 ≤ k ≤ iters).
        iters: at most this many Hessian-vector products.
        tol: relative residual at which a Ritz value counts as converged.
        mode: "train" (BN uses the batch's statistics, the loss SGD descends) or "eval".
        seed: seeds the start vector.

    Returns:
        a ``HessianEigenvalues``; check ``converged`` (and ``residuals``) before trusting the values.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``k`` or ``iters`` < 1, or k > iters; ``tol`` < 0 or not
            finite; no parameter requires a gradient.
        TypeError: ``k``/``iters`` not ints; ``tol`` not a number; ``loss_of`` not callable; ``model``
            not an ``nn.Module``.
        RuntimeError: ``loss_of`` does not return a scalar with a graph to the parameters (torch's error).
    """
    _check_mode(mode)
    A.integer("iters", iters, minimum=1)
    A.integer("k", k, minimum=1)
    if k > iters:
        raise ValueError(f"k={k} eigenvalues need at least k Hessian-vector products: raise iters (got {iters}) "
                         f"to at least {k}.")
    A.real("tol", tol, minimum=0)
    _check_loss_of(loss_of)
    with preserved_state(model):
        ps = _differentiated(model, mode, params)
        gen = torch.Generator().manual_seed(seed)
        start = _flat([torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in ps])
        with torch.enable_grad():
            loss = loss_of(model)
            grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
            matvec = lambda v: _flat(_hvp(grads, ps, _unflat(v, ps))).detach()
            values, residuals, vectors, steps, converged = _lanczos(matvec, start, k, int(iters), float(tol))
        vectors = tuple(tuple(u.detach().clone() for u in _unflat(v, ps)) for v in vectors)
    return HessianEigenvalues(values=tuple(values), residuals=tuple(residuals), iterations=steps,
                              converged=converged, vectors=vectors)


def top_hessian_eigenvalue(model: nn.Module, loss_of: LossOf, iters: int = 20, tol: float = 1e-3,
                           mode: str = "train", seed: int = 0,
                           params: Sequence[torch.Tensor] | None = None) -> TopEigenvalue:
    """Largest eigenvalue λ_max of the Hessian of ``loss_of(model)``: ``hessian_eigenvalues`` with k = 1.

    Lanczos on Hessian-vector products (not power iteration, which returns the eigenvalue
    of largest magnitude and so a negative one when the negative curvature dominates).
    The model is left bit-identical (``preserved_state``): parameters, gradients, buffers
    such as BN's running statistics, train/eval flags, RNG states.

    Args:
        model, loss_of, mode, seed, params: as ``hessian_eigenvalues``.
        iters: at most this many Hessian-vector products (≥ 1).
        tol: stop when the Ritz residual ‖Hy − θy‖ ≤ tol·|θ|.

    Returns:
        a ``TopEigenvalue``. Cost: one forward and backward with a graph, then one
        double-backward per iteration.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``iters`` < 1; ``tol`` < 0 or not finite; no parameter
            requires a gradient.
        TypeError: ``iters`` not an int; ``tol`` not a number; ``loss_of`` not callable; ``model`` not
            an ``nn.Module``.
        RuntimeError: ``loss_of`` does not return a scalar with a graph to the parameters (torch's error).
    """
    r = hessian_eigenvalues(model, loss_of, k=1, iters=iters, tol=tol, mode=mode, seed=seed, params=params)
    return TopEigenvalue(value=r.values[0], iterations=r.iterations, converged=r.converged, vector=r.vectors[0],
                         residual=r.residuals[0])


def gradient_curvature(model: nn.Module, loss_of: LossOf, mode: str = "train",
                       params: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """Curvature along the gradient g of ``loss_of(model)``: ‖Hg‖/‖g‖ and gᵀHg/‖g‖² (one Hessian-vector product).

    ‖Hg‖/‖g‖ is how fast the gradient changes per unit step along itself: the limit, for
    small steps, of the effective β-smoothness of Santurkar et al. (2018, §3.2),
    ‖∇L(θ) − ∇L(θ − ηg)‖/‖ηg‖, which notebook 05 measures with finite steps. Both are at
    most λ_max in magnitude. The model is left bit-identical.

    Returns:
        {"hg_over_g": ‖Hg‖/‖g‖, "rayleigh": gᵀHg/‖g‖², "grad_norm": ‖g‖}; NaN ratios when g = 0.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; no parameter requires a gradient.
        TypeError: ``loss_of`` not callable; ``model`` not an ``nn.Module``.
        RuntimeError: ``loss_of`` does not return a scalar with a graph to the parameters (torch's error).
    """
    _check_mode(mode)
    _check_loss_of(loss_of)
    with preserved_state(model):
        ps = _differentiated(model, mode, params)
        with torch.enable_grad():
            loss = loss_of(model)
            grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
            g = [torch.zeros_like(p) if gr is None else gr.detach() for gr, p in zip(grads, ps)]
            hg = _flat(_hvp(grads, ps, g)).detach()
        g = _flat(g).double()
        hg = hg.double()
        gg = float(g @ g)
        if gg == 0:
            return {"hg_over_g": float("nan"), "rayleigh": float("nan"), "grad_norm": 0.0}
        return {"hg_over_g": float(hg.norm()) / gg ** 0.5, "rayleigh": float(g @ hg) / gg, "grad_norm": gg ** 0.5}


class Sharpness:
    """``fit`` probe: the top Hessian eigenvalue of the training loss on one fixed batch.

    Every ``every`` steps (and at the end) it returns λ_max (a float) of
    ``loss_fn(model(x), y)`` with the model in train mode, as SGD sees it, via
    ``top_hessian_eigenvalue`` (Lanczos); compare with 2/η, the stability threshold of
    full-batch gradient descent with step η (Cohen et al. 2021). The batch is fixed, so the
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
        ValueError: x and y differ in length; B is not a multiple of ``batch_size`` (or it is < 1);
            ``mode`` not "train"/"eval"; ``iters`` < 1; ``tol`` < 0 or not finite; ``every`` a string
            that is not a number. A call raises as ``top_hessian_eigenvalue``.
        TypeError: ``x`` not a floating-point tensor; ``y`` not a tensor; ``iters`` not an int; ``tol``
            not a number.
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

    def _loss_of(self, ctx) -> LossOf:
        x, y = self.x.to(ctx.x.device), self.y.to(ctx.x.device)
        if self.batch_size is None:
            return batch_loss(ctx.loss_fn, x, y)
        xs, ys = x.split(self.batch_size), y.split(self.batch_size)
        return lambda model: sum(ctx.loss_fn(model(a), b) for a, b in zip(xs, ys)) / len(xs)

    def __call__(self, ctx) -> float:
        result = top_hessian_eigenvalue(ctx.model, self._loss_of(ctx), iters=self.iters, tol=self.tol,
                                        mode=self.mode, seed=self.seed)
        return result.value


class HessianSpectrum(Sharpness):
    """``fit`` probe: the top ``k`` Hessian eigenvalues (Lanczos) and the curvature along the gradient.

    The same fixed batch(es), ``every``, ``batch_size``, ``mode`` and ``seed`` as ``Sharpness``;
    each call returns a dict:

    * "top": the k largest eigenvalues, largest first (``hessian_eigenvalues``);
    * "residuals", "hvps", "converged": the Lanczos convergence record;
    * "hg_over_g", "rayleigh", "grad_norm": ``gradient_curvature`` on the same loss (one more
      Hessian-vector product), the curvature a gradient step meets.

    Args: as ``Sharpness``, plus k (≤ iters), the number of eigenvalues.

    Raises:
        ValueError: as ``Sharpness``; ``k`` < 1 or k > iters. A call raises as ``hessian_eigenvalues``
            and ``gradient_curvature``.
        TypeError: as ``Sharpness``; ``k`` not an int.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, every: int | None = None, batch_size: int | None = None,
                 k: int = 5, iters: int = 30, tol: float = 1e-3, mode: str = "train", seed: int = 0) -> None:
        super().__init__(x, y, every=every, batch_size=batch_size, iters=iters, tol=tol, mode=mode, seed=seed)
        A.integer("k", k, minimum=1)
        if k > iters:
            raise ValueError(f"k={k} eigenvalues need iters >= k, got iters={iters}")
        self.k = k

    def __call__(self, ctx) -> dict:
        loss_of = self._loss_of(ctx)
        r = hessian_eigenvalues(ctx.model, loss_of, k=self.k, iters=self.iters, tol=self.tol, mode=self.mode,
                                seed=self.seed)
        out = {"top": list(r.values), "residuals": list(r.residuals), "hvps": r.iterations, "converged": r.converged}
        return out | gradient_curvature(ctx.model, loss_of, mode=self.mode)
