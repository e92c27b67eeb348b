"""What every probe shares: leaving the model bit-identical, module lookup, one fixed batch's loss."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from bnlab import arguments as A
from bnlab.runtime import preserved_rng


MODES = ("train", "eval")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'train' (BN normalizes with the probe batch's own statistics) or 'eval' "
            f"(BN uses its running statistics), got {mode!r}"
        )


def _check_model(model: Any) -> None:
    """The probed model must be an ``nn.Module`` (a common slip: passing the factory ``models.mlp``)."""
    if not isinstance(model, nn.Module):
        hint = ("; it is a function: pass the model it builds, e.g. model = models.mlp()" if callable(model)
                else "")
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}{hint}.")


def _check_tensor(x: Any, name: str = "x", floating: bool = True) -> None:
    """A probe batch must be a torch tensor (floating-point for inputs, integer for class labels)."""
    if isinstance(x, np.ndarray):
        fix = f"torch.from_numpy({name}).float()" if floating else f"torch.from_numpy({name}).long()"
        raise TypeError(f"{name} must be a torch tensor, got a NumPy array; convert it with {fix}.")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}.")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must hold floats, got {x.dtype}; convert it with {name}.float() "
                        f"(raw uint8 pixels: {name}.float() / 255).")
    if not floating and (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must hold integer class labels, got {x.dtype}; convert it with {name}.long().")


def _check_loss_of(loss_of: Any) -> None:
    if not callable(loss_of):
        raise TypeError(f"loss_of must be a function of the model returning a scalar loss, e.g. "
                        f"probes.batch_loss(torch.nn.functional.cross_entropy, x, y); got {type(loss_of).__name__}.")


def _modules_by_name(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    _check_model(model)
    if isinstance(names, str):
        raise TypeError(f"modules must be a list of module names, e.g. [{names!r}], not the string {names!r}.")
    available = dict(model.named_modules())
    missing = [n for n in names if n not in available]
    if missing:
        shown = [n for n in available if n]
        raise ValueError(f"model has no module named {missing}; its modules are {shown}")
    return {n: available[n] for n in names}

def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


LossOf = Callable[[nn.Module], torch.Tensor]
"""A function of the model that returns a scalar loss on a fixed batch (the same at every call)."""


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Run a block that may change ``model`` and put everything back afterwards, bit for bit.

    Restores every parameter and buffer (e.g. BN running statistics), every ``.grad``
    (including ``None``), each module's train/eval flag, and the random states of
    torch (CPU and CUDA), NumPy and Python's ``random``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    _check_model(model)
    params = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
              for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        with preserved_rng():
            yield
    finally:
        with torch.no_grad():
            for p, value, grad in params:
                p.copy_(value)
                if grad is None:
                    p.grad = None
                elif p.grad is None:
                    p.grad = grad
                else:
                    p.grad.copy_(grad)
            for b, value in buffers:
                b.copy_(value)
        for m, training in modes:
            m.training = training


def batch_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
               y: torch.Tensor) -> LossOf:
    """``model ↦ loss_fn(model(x), y)``: the loss on one fixed batch, as a ``LossOf``.

    Shapes: x (B, ...) inputs, y (B, ...) targets; the result is a scalar tensor.

    Raises:
        TypeError: ``loss_fn`` is not callable, ``x`` is not a float tensor, or ``y`` is not a tensor.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(logits, y) -> scalar, e.g. "
                        f"torch.nn.functional.cross_entropy; got {type(loss_fn).__name__}.")
    _check_tensor(x, "x")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch tensor, got {type(y).__name__}; convert a NumPy array with "
                        "torch.from_numpy(y).")
    return lambda model: loss_fn(model(x), y)


def check_every(every: Any) -> int:
    """``every`` (steps between calls of a ``fit`` probe) as a positive int.

    Raises:
        TypeError: not an int (2.5 or True included); ValueError: below 1.
    """
    return A.integer("every", every, minimum=1, hint="It is the number of SGD steps between two probe calls.")
