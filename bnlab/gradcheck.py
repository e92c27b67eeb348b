"""Finite differences, relative errors and timings for checking backward passes (NumPy).

``numerical_gradient`` and ``rel_error`` follow CS231n's definitions, so
numbers here compare with the ones students know from that course.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["numerical_gradient", "rel_error", "check_gradients", "GradientReport", "time_backward"]


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray,
                       h: float = 1e-5, order: int = 2) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    For every entry i: (g(x + h eᵢ) − g(x − h eᵢ)) / (2h) with g(x) = Σ f(x)·dout,
    i.e. the vector–Jacobian product dout · ∂f/∂x a backward pass computes.
    Its error is O(h²) (truncation) plus O(machine ε · |g| / h) (round-off).
    ``order=4`` uses the five-point stencil
    (−g(x+2h) + 8g(x+h) − 8g(x−h) + g(x−2h)) / (12h), error O(h⁴): with h ≈ 1e-3
    it reaches ~1e-10 relative error in float64 where the two-point one stops near 1e-8.
    ``x`` is perturbed in place and restored; ``f`` may close over it.

    Args:
        f: x → output array (any shape matching ``dout``).
        x: the input, any shape, floating point (use float64 for checks).
        dout: upstream gradient, shape of f(x).
        h: step size.
        order: 2 (central differences, CS231n's) or 4 (five-point stencil).

    Returns:
        grad: same shape as ``x``.

    Raises:
        ValueError: ``x`` is not a floating-point NumPy array, ``h`` <= 0, ``order`` is not 2 or 4, or
            ``f(x)`` does not have the shape of ``dout``.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError("x must be a floating-point numpy array (it is perturbed in place).")
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}.")
    if order not in _STENCILS:
        raise ValueError(f"order must be 2 or 4, got {order}.")
    offsets, weights, denom = _STENCILS[order]
    dout = np.asarray(dout)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        total = 0.0
        for s, w in zip(offsets, weights):
            x[i] = old + s * h
            val = np.asarray(f(x))
            if val.shape != dout.shape:
                x[i] = old
                raise ValueError(f"f(x) has shape {val.shape} but dout has shape {dout.shape}.")
            total = total + w * val
        x[i] = old
        grad[i] = np.sum(total * dout) / (denom * h)
    return grad


# offsets (in units of h), weights, denominator (times h) of the central stencils
_STENCILS = {
    2: ((1, -1), (1.0, -1.0), 2.0),
    4: ((2, 1, -1, -2), (-1.0, 8.0, -8.0, 1.0), 12.0),
}


def rel_error(a: Any, b: Any) -> float:
    """Largest elementwise relative error max |a − b| / max(1e-8, |a| + |b|) (CS231n's).

    Args:
        a, b: arrays of the same shape (or scalars).

    Returns:
        a float; below ~1e-7 in float64 means "the same up to round-off".

    Raises:
        ValueError: ``a`` and ``b`` differ in shape.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of the same shape, got {a.shape} and {b.shape}.")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@dataclass
class GradientReport:
    """Result of ``check_gradients``.

    Attributes:
        errors: input name → rel_error between the analytic and the numerical gradient.
        worst: the largest of those errors; worst_name: the input it belongs to.
        tol: the threshold used; passed: worst < tol.
        analytic, numerical: input name → the two gradients.
    """

    errors: dict[str, float]
    tol: float
    analytic: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    numerical: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def worst_name(self) -> str:
        return max(self.errors, key=lambda k: self.errors[k])

    @property
    def worst(self) -> float:
        return self.errors[self.worst_name]

    @property
    def passed(self) -> bool:
        return bool(self.worst < self.tol)

    def __str__(self) -> str:
        parts = ", ".join(f"d{k}: {v:.1e}" for k, v in self.errors.items())
        return f"{'PASS' if self.passed else 'FAIL'} (rel. error {parts}; tolerance {self.tol:.0e})"


def check_gradients(fn: Callable[..., tuple[np.ndarray, Any]], inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                    backward: Callable[[np.ndarray, Any], Sequence[np.ndarray]], dout: np.ndarray | None = None,
                    h: float = 1e-5, order: int = 2, tol: float = 1e-7, seed: int = 0) -> GradientReport:
    """Compare a backward pass with central differences of its forward pass, for every input.

    ``fn(*inputs)`` must return ``(out, cache)`` and ``backward(dout, cache)``
    the gradients with respect to each input, in order (the CS231n layer
    convention, e.g. ``batchnorm_forward`` / ``batchnorm_backward``).

    Args:
        fn: forward function.
        inputs: the arrays passed to ``fn`` positionally, as a dict name → array
            (names label the report) or a sequence (named x0, x1, ...). Cast to float64.
        backward: backward function.
        dout: upstream gradient, shape of the output; default standard normal (seeded).
        h, order: finite-difference step and stencil (see ``numerical_gradient``).
        tol: pass threshold on the relative error.

    Returns:
        a ``GradientReport`` (``.passed``, ``.worst``, ``.worst_name``, ``.errors``).

    Raises:
        ValueError: ``backward`` returns one gradient too many or too few, or an output or gradient
            shape does not match (see ``numerical_gradient``, ``rel_error``).
    """
    if isinstance(inputs, Mapping):
        names = list(inputs)
        arrays = [np.array(inputs[k], dtype=np.float64) for k in names]
    else:
        arrays = [np.array(a, dtype=np.float64) for a in inputs]
        names = [f"x{i}" for i in range(len(arrays))]
    out, cache = fn(*arrays)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(np.shape(out))
    grads = backward(dout, cache)
    if len(grads) != len(arrays):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(arrays)} inputs.")
    errors, analytic, numerical = {}, {}, {}
    for k, (name, arr) in enumerate(zip(names, arrays)):
        def f(a: np.ndarray, k: int = k) -> np.ndarray:
            args = list(arrays)
            args[k] = a
            return fn(*args)[0]
        num = numerical_gradient(f, arr.copy(), dout, h=h, order=order)
        analytic[name], numerical[name] = np.asarray(grads[k]), num
        errors[name] = rel_error(grads[k], num)
    return GradientReport(errors=errors, tol=tol, analytic=analytic, numerical=numerical)


def time_backward(backwards: Mapping[str, Callable[[np.ndarray, Any], Any]],
                  forward: Callable[..., tuple[np.ndarray, Any]], shapes: Sequence[tuple[int, int]],
                  repeats: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Median seconds per call of several backward functions at several (N, D) shapes.

    For each shape, builds x ~ N(0, 1), γ = 1, β = 0 (float64), runs ``forward``
    once and then calls the backward functions in turn, ``repeats`` rounds, on the same cache.

    Args:
        backwards: name → backward(dout, cache), e.g. {"staged": batchnorm_backward, ...}.
        forward: forward(x, gamma, beta) → (out, cache).
        shapes: list of (N, D).
        repeats: timed calls per shape (the median is reported).

    Returns:
        name → (len(shapes),) array of median seconds per call.

    Raises:
        ValueError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    rng = np.random.default_rng(seed)
    result = {name: np.zeros(len(shapes)) for name in backwards}
    for j, (n, d) in enumerate(shapes):
        x = rng.standard_normal((n, d))
        out, cache = forward(x, np.ones(d), np.zeros(d))
        dout = rng.standard_normal(out.shape)
        times: dict[str, list[float]] = {name: [] for name in backwards}
        for bwd in backwards.values():
            bwd(dout, cache)  # warm-up
        for _ in range(repeats):  # interleaved, so a busy machine slows every function alike
            for name, bwd in backwards.items():
                start = time.perf_counter()
                bwd(dout, cache)
                times[name].append(time.perf_counter() - start)
        for name in backwards:
            result[name][j] = float(np.median(times[name]))
    return result
