"""The ingredients of Santurkar et al. 2018, Theorem 4.1 (the BN gradient-norm bound), per unit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from bnlab.probes.core import LossOf, batch_loss, check_every, preserved_state



def _is_batchnorm(module: nn.Module) -> bool:
    """Plain BN only (bnlab's or torch's): NoisyBatchNorm's output is not γŷ + β, so the theorem does not apply."""
    from bnlab.layers import BatchNorm
    return isinstance(module, nn.modules.batchnorm._BatchNorm) or type(module) is BatchNorm


@dataclass
class BNGradientTerms:
    """The ingredients of Theorem 4.1 for one BN layer, per unit j (all arrays (C,)).

    y_j ∈ R^m are unit j's inputs to BN over the batch (m = batch size, times H·W for
    images), ŷ_j = (y_j − μ_j)/σ_j with σ_j² = Var(y_j) + ε, z_j = γ_j ŷ_j + β_j the BN
    output, g_j = ∂L/∂z_j (the gradient an identical network without the BN layer would
    have at its layer output) and ∂L̂/∂y_j the gradient through BN.

    Attributes:
        grad_in_sq: ‖∂L̂/∂y_j‖², the left-hand side.
        grad_out_sq: ‖g_j‖².
        mean_term: ⟨1, g_j⟩² / m (what removing the mean takes away).
        yhat_term: ⟨g_j, ŷ_j⟩² / m (what removing the component along ŷ_j takes away).
        gain: γ_j² / σ_j².
        m: the number of values per unit.
        layer: the BN module's name.
    """

    grad_in_sq: np.ndarray
    grad_out_sq: np.ndarray
    mean_term: np.ndarray
    yhat_term: np.ndarray
    gain: np.ndarray
    m: int
    layer: str = ""

    @property
    def bound(self) -> np.ndarray:
        """(C,) the right-hand side γ²/σ² · (‖g‖² − ⟨1,g⟩²/m − ⟨g,ŷ⟩²/m)."""
        return self.gain * (self.grad_out_sq - self.mean_term - self.yhat_term)

    @property
    def removed_fraction(self) -> np.ndarray:
        """(C,) share of ‖g‖² removed by the two projections (in [0, 1])."""
        return (self.mean_term + self.yhat_term) / np.maximum(self.grad_out_sq, 1e-300)

    @property
    def reduction(self) -> np.ndarray:
        """(C,) ‖∂L̂/∂y‖² / ‖∂L/∂z‖²: how much smaller the gradient through BN is."""
        return self.grad_in_sq / np.maximum(self.grad_out_sq, 1e-300)


def bn_gradient_terms(model: nn.Module, loss_of: LossOf, train_mode: bool = True) -> dict[str, BNGradientTerms]:
    """Measure the ingredients of Santurkar et al.'s Theorem 4.1 at every BN layer of ``model``.

    One forward/backward pass of ``loss_of(model)`` in train mode (batch statistics); hooks record
    each BN layer's input y (N, C[, H, W]) and output z and their gradients. Leaves parameters,
    buffers, gradients, modes and RNG states bit-identical.

    Returns:
        BN layer name → ``BNGradientTerms`` with per-unit arrays of shape (C,).

    Raises:
        ValueError: the model has no plain BN layer (bnlab's ``BatchNorm`` or ``nn.BatchNorm*``), or one
            gets no gradient from the loss.
        TypeError: ``loss_of`` not callable.
        AttributeError: ``model`` not an ``nn.Module``.
        RuntimeError: ``loss_of`` does not return a scalar with a graph to the parameters (torch's error).
    """
    layers = [(name, m) for name, m in model.named_modules() if _is_batchnorm(m)]
    if not layers:
        raise ValueError("the model has no batch-normalization layer (bnlab.layers.BatchNorm or nn.BatchNorm*)")
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            inputs[0].retain_grad()
            output.retain_grad()
            captured[name] = (inputs[0], output)
        return record

    result: dict[str, BNGradientTerms] = {}
    with preserved_state(model):
        if train_mode:
            model.train()
        handles = [m.register_forward_hook(hook(name)) for name, m in layers]
        try:
            loss = loss_of(model)
            loss.backward()
        finally:
            for h in handles:
                h.remove()
        with torch.no_grad():
            for name, module in layers:
                y, z = captured[name]
                if y.grad is None or z.grad is None:
                    raise ValueError(f"BN layer {name!r} got no gradient: is it used by the loss?")
                c = y.shape[1]
                flat = lambda t: t.detach().transpose(0, 1).reshape(c, -1).double()  # noqa: E731
                yv, gz, gy = flat(y), flat(z.grad), flat(y.grad)
                m = yv.shape[1]
                var, mean = torch.var_mean(yv, dim=1, correction=0)
                sigma2 = var + module.eps
                yhat = (yv - mean[:, None]) / sigma2.sqrt()[:, None]
                gamma = module.weight.detach().double() if module.weight is not None else torch.ones(c).double()
                result[name] = BNGradientTerms(
                    grad_in_sq=(gy ** 2).sum(1).numpy(),
                    grad_out_sq=(gz ** 2).sum(1).numpy(),
                    mean_term=(gz.sum(1) ** 2 / m).numpy(),
                    yhat_term=((gz * yhat).sum(1) ** 2 / m).numpy(),
                    gain=(gamma ** 2 / sigma2).numpy(),
                    m=m, layer=name)
    return result


def bn_gradient_probe(every: int = 500, train_mode: bool = True) -> Callable[[Any], dict[str, BNGradientTerms]]:
    """A ``fit`` probe recording ``bn_gradient_terms`` on the step's batch every ``every`` steps.

    Raises:
        TypeError: ``every`` not an int.
        ValueError: ``every`` < 1.
    """
    every = check_every(every)

    def probe(ctx: Any) -> dict[str, BNGradientTerms]:
        return bn_gradient_terms(ctx.model, batch_loss(ctx.loss_fn, ctx.x, ctx.y), train_mode=train_mode)

    probe.every = every  # type: ignore[attr-defined]
    return probe
