"""Per-layer gradient norms."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from bnlab.probes.core import _check_mode, _check_model, _check_tensor, _device_of, check_every, preserved_state


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   params: str = "weights", mode: str = "train") -> dict[str, float]:
    """ℓ2 norm of the loss gradient of each layer's parameters on one batch.

    Computed with ``torch.autograd.grad`` inside ``preserved_state(model)``: the
    parameters' ``.grad``, BN running statistics and the RNG are left as they were.

    Args:
        model: the network. x: (B, ...) inputs. y: (B,) targets.
        loss_fn: ``loss_fn(logits, y) -> scalar``; default cross-entropy.
        params: "weights": one entry per module with a weight matrix/kernel (ndim ≥ 2:
            Linear, Conv), keyed by the module's name (``fc1``, ``fc2``, ..., ``out``);
            "all": every parameter, keyed by its full name (``fc1.weight``, ``norm1.bias``, ...).
        mode: "train" (BN uses the batch statistics of x, as in training) or "eval".

    Returns: name → ‖∂loss/∂θ‖₂, in the model's order.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``params`` not "weights"/"all"; no trainable parameter
            of that kind.
        TypeError: ``model`` not an ``nn.Module``; ``x`` not a floating-point tensor; ``y`` not an
            integer tensor (with the default loss).
        RuntimeError: the model cannot take ``x``, or ``loss_fn`` does not return a scalar (torch's error).
    """
    _check_mode(mode)
    _check_model(model)
    _check_tensor(x, "x")
    if loss_fn is None:  # cross-entropy takes class indices
        _check_tensor(y, "y", floating=False)
    if params == "weights":
        chosen = [(name.rsplit(".", 1)[0] if "." in name else name, p) for name, p in model.named_parameters()
                  if name.split(".")[-1] == "weight" and p.ndim >= 2 and p.requires_grad]
    elif params == "all":
        chosen = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    else:
        raise ValueError(f"params must be 'weights' or 'all', got {params!r}")
    if not chosen:
        raise ValueError("the model has no trainable parameters of the requested kind")
    loss_fn = loss_fn or nn.functional.cross_entropy
    with preserved_state(model), torch.enable_grad():
        model.train(mode == "train")
        dev = _device_of(model)
        loss = loss_fn(model(x.to(dev)), y.to(dev))
        grads = torch.autograd.grad(loss, [p for _, p in chosen], allow_unused=True)
    return {name: (0.0 if g is None else float(g.detach().double().norm())) for (name, _), g in zip(chosen, grads)}


class GradientNorms:
    """``fit`` probe: ``gradient_norms`` on the batch of the coming update (or a fixed batch).

    Each call returns name → ‖∂loss/∂W‖₂ for that step; ``stack_records`` turns the
    list into arrays (K,) per layer.

    Args:
        every: run every this many steps.
        batch: a fixed (x, y) to measure on instead of each step's training batch.
        params, mode: see ``gradient_norms``.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``every`` < 1. A call raises as ``gradient_norms``
            (``params`` is checked there).
        TypeError: ``every`` not an int.
    """

    def __init__(self, every: int = 500, batch: tuple[torch.Tensor, torch.Tensor] | None = None,
                 params: str = "weights", mode: str = "train") -> None:
        _check_mode(mode)
        every = check_every(every)
        self.every, self.batch, self.params, self.mode = every, batch, params, mode

    def __call__(self, ctx: Any) -> dict[str, float]:
        x, y = self.batch if self.batch is not None else (ctx.x, ctx.y)
        return gradient_norms(ctx.model, x, y, ctx.loss_fn, self.params, self.mode)




def growth_per_layer(norms: Sequence[float] | np.ndarray) -> float:
    """Geometric growth of gradient norms per layer, from the input side backwards.

    Fits log‖g_k‖ = a + b·k by least squares over the layers k = 1..K given (ordered from
    input to output, as ``gradient_norms`` returns them) and returns exp(−b): the factor by
    which the gradient norm grows per layer as it travels from the output towards the input
    (> 1: exploding, < 1: vanishing). Pass only comparable layers (e.g. the square
    hidden-to-hidden ones: drop the first layer, whose fan-in is the input's, and the output layer).

    Yang et al. (2019, "A Mean Field Theory of Batch Normalization") predict √(π/(π−1)) ≈ 1.211 per layer for a deep ReLU net with
    BN before every ReLU, at initialisation and large width and batch.

    Args:
        norms: (K,) positive gradient norms, K >= 2, input side first.

    Raises:
        ValueError: fewer than 2 values, or a value that is not positive and finite.
    """
    g = np.asarray(norms, dtype=np.float64).ravel()
    if g.size < 2:
        raise ValueError(f"need the gradient norms of at least 2 layers to fit a growth rate, got {g.size}")
    if not (np.all(np.isfinite(g)) and np.all(g > 0)):
        raise ValueError(f"gradient norms must be positive and finite to take logs, got {g.tolist()}")
    slope = np.polyfit(np.arange(g.size, dtype=np.float64), np.log(g), 1)[0]
    return float(np.exp(-slope))
