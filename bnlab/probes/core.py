"""What every probe shares: leaving the model bit-identical, module lookup, one fixed batch's loss."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn


MODES = ("train", "eval")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'train' (BN normalizes with the probe batch's own statistics) or 'eval' "
            f"(BN uses its running statistics), got {mode!r}"
        )


def _modules_by_name(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
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
    """
    params = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
              for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
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
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


def batch_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
               y: torch.Tensor) -> LossOf:
    """``model ↦ loss_fn(model(x), y)``: the loss on one fixed batch, as a ``LossOf``.

    Shapes: x (B, ...) inputs, y (B, ...) targets; the result is a scalar tensor.
    """
    return lambda model: loss_fn(model(x), y)


