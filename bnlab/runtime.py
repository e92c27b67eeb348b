"""Run-time switches shared by every notebook: quick/full mode, seeding, device."""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def is_quick() -> bool:
    """True when the environment variable ``BNLAB_QUICK`` asks for quick mode.

    Quick mode (``BNLAB_QUICK=1``, set by the tests) shrinks step counts and
    sweeps so each notebook runs in well under two minutes on two CPU cores.
    Unset, notebooks run the paper-faithful full experiment.

    Raises:
        ValueError: ``BNLAB_QUICK`` holds a value other than 1/0 (or true/false, yes/no, on/off).
    """
    value = os.environ.get("BNLAB_QUICK", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"BNLAB_QUICK={value!r} is not understood: use BNLAB_QUICK=1 for quick mode "
        "or leave it unset (or 0) for the full experiment."
    )


def quick(full: T, quick: T) -> T:
    """Pick a run-size knob by mode: ``STEPS = bnlab.quick(full=50_000, quick=1_000)``.

    Raises:
        ValueError: ``BNLAB_QUICK`` is not understood (see ``is_quick``).
    """
    return quick if is_quick() else full


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block and put the global random states back afterwards: torch (CPU, and CUDA
    if initialised), NumPy and Python's ``random``. Code after the block draws the same
    numbers whether or not the block ran (e.g. runs done in this process or in workers)."""
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """Turn ``"auto"`` into ``cuda`` when a GPU is visible, else ``cpu``.

    Raises:
        RuntimeError: a CUDA device is asked for and torch sees no GPU, or ``device`` is not a
            device torch knows.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was asked for but torch sees no CUDA GPU; "
            "use device='cpu' or device='auto'."
        )
    return dev
