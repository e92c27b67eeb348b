"""Argument checks shared by bnlab's public functions.

Each check returns the value in its canonical form or raises an error that
names the argument, what is wrong with it and how to fix it, before any work
starts (instead of a message from deep inside torch or NumPy).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np
import torch

__all__ = ["integer", "real", "one_of", "as_tensor"]


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
            hint: str = "") -> int:
    """``value`` as a Python int in [minimum, maximum].

    Raises:
        TypeError: not an integer (bool, float or str included: ``steps=1e2`` is a float).
        ValueError: out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fix = ""
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            fix = f"; write {name}={int(value)} (1e2 and 100.0 are floats)"
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}{fix}.{' ' + hint if hint else ''}")
    value = int(value)
    _in_range(name, value, minimum, maximum, hint)
    return value


def real(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
         strict: bool = False, finite: bool = True, hint: str = "") -> float:
    """``value`` as a float in [minimum, maximum] (open at ``minimum`` when ``strict``).

    Raises:
        TypeError: not a real number (bool and str included).
        ValueError: NaN, infinite (when ``finite``) or out of range.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.{' ' + hint if hint else ''}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}.{' ' + hint if hint else ''}")
    if strict and minimum is not None and not value > minimum:
        raise ValueError(f"{name} must be > {_fmt(minimum)}, got {_fmt(value)}.{' ' + hint if hint else ''}")
    _in_range(name, value, minimum, maximum, hint)
    return value


def _fmt(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _in_range(name: str, value: float, minimum: float | None, maximum: float | None, hint: str) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo, hi = (None if b is None else _fmt(b) for b in (minimum, maximum))
        bounds = f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
        raise ValueError(f"{name} must be {bounds}, got {_fmt(value)}.{' ' + hint if hint else ''}")


def one_of(name: str, value: Any, options: Iterable[Any]) -> Any:
    """``value`` if it is one of ``options``, else a ValueError listing them."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}.")
    return value


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """A torch tensor, or a NumPy array converted with ``torch.from_numpy`` (no copy).

    Raises:
        TypeError: anything else (a list, a DataFrame, ...), with the conversion to use.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} is a NumPy array of Python objects; convert it to numbers first.")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{name} must be a torch.Tensor or a NumPy array, got {type(value).__name__}; "
                    f"convert it with torch.as_tensor({name}).")
