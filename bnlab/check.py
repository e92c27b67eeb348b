"""Homework checkers: run a student's function on random inputs against the reference.

Each checker calls the student's function on a few float64 inputs (including
the edge cases N = 2 and D = 1), compares every output with ``bnlab.functional``
and, for backward passes, with finite differences of the forward pass, prints
a one-line verdict and returns a ``CheckResult``::

    >>> import bnlab.check
    >>> result = bnlab.check.batchnorm_backward(my_batchnorm_backward)
    PASS batchnorm_backward: worst relative error 2.4e-10 (dx, x of shape (32, 16)) over 4 inputs.
    >>> result.passed
    True

Backward checkers take an optional ``forward``: by default the student's
backward receives the cache of ``bnlab.functional.batchnorm_forward`` (a dict,
see that module); pass your own forward function when your backward expects
your own cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from bnlab import functional as F
from bnlab.gradcheck import numerical_gradient, rel_error

__all__ = ["CheckResult", "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
           "batchnorm_inference", "layernorm_forward", "layernorm_backward", "update_running_stats",
           "spatial_batchnorm_forward", "spatial_batchnorm_backward", "SHAPES", "SPATIAL_SHAPES",
           "groupnorm_forward", "groupnorm_backward", "groupnorm_groups", "batchnorm_backward_nodes"]

#: (N, D) of the random inputs every checker uses: the edge cases N = 2 and D = 1, and two ordinary ones.
SHAPES: tuple[tuple[int, int], ...] = ((2, 3), (4, 1), (8, 5), (32, 16))
#: (N, C, H, W) of the spatial checkers' inputs: one image, one channel, 1×1 maps, an ordinary batch.
SPATIAL_SHAPES: tuple[tuple[int, int, int, int], ...] = ((1, 2, 3, 3), (4, 1, 2, 2), (3, 3, 1, 1), (4, 5, 3, 2))
TOL = 1e-6
#: below this relative error a float32 result is float32 rounding, not a wrong formula
FLOAT32_ROUNDING = 1e-4


@dataclass
class CheckResult:
    """The verdict of a checker.

    Attributes:
        name: what was checked (e.g. "batchnorm_backward").
        passed: every output of every case within ``tol``.
        worst_error: the largest relative error seen (inf if the function failed to run).
        worst_output: which output it was in ("out", "dx", "dgamma", "dbeta", ...).
        worst_shape: the (N, D) of that case.
        tol: the threshold.
        errors: (shape, output, against, error) for every comparison made.
        message: the printed verdict.
    """

    name: str
    passed: bool
    worst_error: float
    worst_output: str
    worst_shape: tuple[int, ...] | None
    tol: float
    errors: list[tuple[tuple[int, ...], str, str, float]] = field(default_factory=list, repr=False)
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message


class _Failure(Exception):
    """The student's function crashed or returned something of the wrong kind."""


def _inputs(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """x (N, D), gamma (D,), beta (D,), dout (N, D) in float64, and a finite-difference step h.

    For N = 2 the two values of a feature always normalize to about ±1, so
    ∂y/∂x is ~ε/σ² tiny unless the batch variance σ² is comparable to ε: there
    x has spread ~√ε (and h shrinks with it), the regime where ε matters and
    relative errors mean something.
    """
    rng = np.random.default_rng(seed)
    scale = 3e-3 if n == 2 else 1.0
    x = 1.0 + 3.0 * scale * rng.standard_normal((n, d))
    if n == 2:
        x[1] = x[0] + rng.choice([-1.0, 1.0], size=d) * rng.uniform(1.0, 3.0, size=d) * scale
    return x, rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal((n, d)), 3e-3 * scale


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))
    except Exception as exc:  # the student's code: report, don't crash the notebook
        raise _Failure(f"raised {type(exc).__name__}: {exc}") from exc


def _as_outputs(value: Any, names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    if len(names) == 1:
        value = (value,)
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        raise _Failure(f"should return {len(names)} value(s) ({', '.join(names)}), got {type(value).__name__}")
    out = []
    for v, name, shape in zip(value, names, shapes):
        arr = np.asarray(v)
        if arr.shape != tuple(shape):
            raise _Failure(f"returned {name} of shape {arr.shape}, expected {tuple(shape)}")
        out.append(arr)
    return out


def _low_precision(names: Sequence[str], arrays: Sequence[np.ndarray]) -> set[str]:
    """Names of outputs the student returned in float32 (or float16) although the inputs were float64."""
    return {n for n, a in zip(names, arrays) if a.dtype in (np.float32, np.float16)}


def _verdict(name: str, errors: list[tuple[tuple[int, ...], str, str, float]], tol: float,
             failure: tuple[tuple[int, ...], str] | None, verbose: bool,
             low_precision: set[str] | None = None, diagnosis: str | None = None) -> CheckResult:
    low_precision = low_precision or set()
    if failure is not None:
        shape, why = failure
        msg = f"FAIL {name}: on x of shape {shape} the function {why}."
        result = CheckResult(name, False, float("inf"), "", shape, tol, errors, msg)
    else:
        shape, output, against, worst = max(errors, key=lambda e: e[3])
        if worst < tol:
            msg = (f"PASS {name}: worst relative error {worst:.1e} ({output}, x of shape {shape}) "
                   f"over {len({e[0] for e in errors})} inputs.")
        elif output in low_precision and worst < FLOAT32_ROUNDING:
            msg = (f"FAIL {name}: {output} is float32, so it is only as precise as float32 (relative error "
                   f"{worst:.1e} against {against}, tolerance {tol:.0e} for float64). The formula may well be "
                   f"right: compute in float64 (the inputs are float64; drop the astype(np.float32) or float32 "
                   f"constants) and check again.")
        else:
            msg = (f"FAIL {name}: {output} is wrong, relative error {worst:.1e} against {against} "
                   f"for x of shape {shape} (tolerance {tol:.0e}).")
            if diagnosis:
                msg += f" {diagnosis}"
            elif output in low_precision:
                msg += f" (Also: {output} is float32; compute in float64.)"
        result = CheckResult(name, worst < tol, worst, output, shape, tol, errors, msg)
    if verbose:
        print(result.message)
    return result


def _spatial_inputs(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """x (N, C, H, W), gamma (C,), beta (C,), dout (N, C, H, W) in float64, and a finite-difference step h."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    return (1.0 + 3.0 * rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c),
            rng.standard_normal(shape), 3e-3)


def _flat_inputs(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    return _inputs(shape[0], shape[1], seed)


def _check_forward(name: str, student: Callable[..., Any], reference: Callable[..., Any], extra: Callable[[int], tuple],
                   tol: float, verbose: bool, shapes: Sequence[tuple[int, ...]] = SHAPES,
                   inputs: Callable[..., tuple] = _flat_inputs) -> CheckResult:
    _check_callable(student, "student_fn")
    errors: list[tuple[tuple[int, ...], str, str, float]] = []
    low: set[str] = set()
    for k, shape in enumerate(shapes):
        x, gamma, beta, _, _ = inputs(shape, seed=k)
        args = (x, gamma, beta) + extra(shape[1])
        try:
            got = _call(student, *args)
            if isinstance(got, tuple) and len(got) == 2:  # (out, cache)
                got = got[0]
            (out,) = _as_outputs(got, ["out"], [x.shape])
        except _Failure as why:
            return _verdict(name, errors, tol, (shape, str(why)), verbose)
        low |= _low_precision(["out"], [out])
        want = reference(*args)
        want = want[0] if isinstance(want, tuple) else want
        errors.append((shape, "out", "the reference", rel_error(out, want)))
    return _verdict(name, errors, tol, None, verbose, low)


def _check_callable(fn: Any, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be your function itself (e.g. check.batchnorm_forward(my_batchnorm_forward)), "
                        f"not its result: got {type(fn).__name__}.")


def _check_tol(tol: Any) -> None:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol must be a relative error in (0, 1), e.g. 1e-6 (the default); got {tol!r}.")


def _check_backward(name: str, student: Callable[..., Any], forward: Callable[..., Any],
                    ref_forward: Callable[..., Any], ref_backward: Callable[..., Any], tol: float,
                    verbose: bool, shapes: Sequence[tuple[int, ...]] = SHAPES,
                    inputs: Callable[..., tuple] = _flat_inputs,
                    extra: Callable[[int], tuple] = lambda d: ()) -> CheckResult:
    _check_callable(student, "student_fn")
    _check_callable(forward, "forward")
    _check_tol(tol)
    names = ["dx", "dgamma", "dbeta"]
    errors: list[tuple[tuple[int, ...], str, str, float]] = []
    low: set[str] = set()
    for k, shape in enumerate(shapes):
        x, gamma, beta, dout, h = inputs(shape, seed=k)
        d = shape[1]
        try:
            fwd = _call(forward, x, gamma, beta, *extra(d))
            if not (isinstance(fwd, tuple) and len(fwd) == 2):
                raise _Failure("forward should return (out, cache)")
            got = _as_outputs(_call(student, dout, fwd[1]), names, [x.shape, (d,), (d,)])
        except _Failure as why:
            return _verdict(name, errors, tol, (shape, str(why)), verbose)
        low |= _low_precision(names, got)
        want = ref_backward(dout, ref_forward(x, gamma, beta, *extra(d))[1])
        args0 = [x, gamma, beta]
        for j, (g, w) in enumerate(zip(got, want)):
            def f(a: np.ndarray, j: int = j) -> np.ndarray:
                args = list(args0)
                args[j] = a
                return ref_forward(*args, *extra(d))[0]
            num = numerical_gradient(f, args0[j].copy(), dout, h=h, order=4)
            errors.append((shape, names[j], "the reference", rel_error(g, w)))
            errors.append((shape, names[j], "finite differences", rel_error(g, num)))
    return _verdict(name, errors, tol, None, verbose, low)


def batchnorm_forward(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(x, gamma, beta, eps) -> (out, cache)`` against ``functional.batchnorm_forward``.

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    _check_tol(tol)
    return _check_forward("batchnorm_forward", student_fn, F.batchnorm_forward, lambda d: (1e-5,), tol, verbose)


def batchnorm_backward(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                       tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` against the reference and finite differences.

    Args:
        student_fn: the backward pass to check.
        forward: ``forward(x, gamma, beta) -> (out, cache)`` whose cache ``student_fn``
            reads; default ``bnlab.functional.batchnorm_forward``.
        tol: largest relative error that passes.
        verbose: print the verdict.

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` or ``forward`` gives a FAIL
            verdict, not an error.
    """
    return _check_backward("batchnorm_backward", student_fn, forward or F.batchnorm_forward,
                           F.batchnorm_forward, F.batchnorm_backward, tol, verbose)


def batchnorm_backward_alt(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                           tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check a simplified (closed-form) batch-norm backward pass; same contract as ``batchnorm_backward``.

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` or ``forward`` gives a FAIL
            verdict, not an error.
    """
    return _check_backward("batchnorm_backward_alt", student_fn, forward or F.batchnorm_forward,
                           F.batchnorm_forward, F.batchnorm_backward_alt, tol, verbose)


def batchnorm_backward_nodes(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                             tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check a staged backward pass node by node and name the first node whose gradient is wrong.

    ``student_fn(dout, cache)`` returns a dict of the gradients at the nodes of the graph,
    keyed by the names of ``bnlab.functional.BACKWARD_NODES`` ("beta", "gamma", "xhat",
    "inv_std", "std", "var", "xc", "mu", "x": the cache keys of ``batchnorm_forward``).
    Each is compared, in the order the backward pass computes them (output to input), with
    ``functional.batchnorm_backward_nodes`` on the same random inputs as the other checkers
    (random upstream gradients: an all-ones ∂ℓ/∂y would make the true ∂ℓ/∂x zero).
    The first node that is wrong is where the bug is: every node before it was right.
    Keys missing from the dict are reported; extra keys are ignored; an array of the right
    size but another shape (e.g. (1, D) from ``keepdims=True``) is accepted.
    On failure the per-node errors of that input are printed (if ``verbose``).

    Args:
        student_fn: ``(dout, cache) -> dict[str, array]``.
        forward: ``forward(x, gamma, beta) -> (out, cache)`` whose cache ``student_fn``
            reads; default ``bnlab.functional.batchnorm_forward``.
        tol: largest relative error that passes.
        verbose: print the verdict.

    Returns:
        a ``CheckResult`` whose ``worst_output`` is the first wrong node (or the worst one on a pass).

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); a node gradient NumPy cannot read as numbers (strings).
            An exception inside ``student_fn`` or ``forward`` gives a FAIL verdict, not an error.
    """
    name = "batchnorm_backward_nodes"
    _check_callable(student_fn, "student_fn")
    _check_tol(tol)
    errors: list[tuple[tuple[int, ...], str, str, float]] = []
    forward = forward or F.batchnorm_forward
    _check_callable(forward, "forward")
    for k, (n, d) in enumerate(SHAPES):
        x, gamma, beta, dout, _ = _inputs(n, d, seed=k)
        want = F.batchnorm_backward_nodes(dout, F.batchnorm_forward(x, gamma, beta)[1])
        try:
            fwd = _call(forward, x, gamma, beta)
            if not (isinstance(fwd, tuple) and len(fwd) == 2):
                raise _Failure("forward should return (out, cache)")
            got = _call(student_fn, dout, fwd[1])
            if not isinstance(got, dict):
                raise _Failure(f"should return a dict of node gradients keyed by {list(F.BACKWARD_NODES)}, "
                               f"got {type(got).__name__}")
            missing = [key for key in F.BACKWARD_NODES if key not in got]
            if missing:
                raise _Failure(f"returned no gradient for the node(s) {missing} (keys: {list(F.BACKWARD_NODES)})")
        except _Failure as why:
            return _verdict(name, errors, tol, ((n, d), str(why)), verbose)
        case = []
        for key in F.BACKWARD_NODES:
            arr = np.asarray(got[key], dtype=np.float64)
            if arr.size != want[key].size:
                return _verdict(name, errors, tol, ((n, d), f"returned the gradient of {key} with shape {arr.shape}, "
                                                            f"expected {want[key].shape}"), verbose)
            case.append(((n, d), key, "the reference", rel_error(arr.reshape(want[key].shape), want[key])))
        errors += case
        first_wrong = next((e for e in case if not e[3] < tol), None)
        if first_wrong is not None:
            done = [e[1] for e in case[:case.index(first_wrong)]]
            right = f"the nodes before it ({', '.join(done)}) are right, " if done else ""
            msg = (f"FAIL {name}: the first wrong node is {first_wrong[1]!r} (relative error {first_wrong[3]:.1e} "
                   f"for x of shape {(n, d)}); {right}so the bug is in the step that computes d{first_wrong[1]}.")
            result = CheckResult(name, False, max(e[3] for e in case), first_wrong[1], (n, d), tol, errors, msg)
            if verbose:
                print(msg)
                print("   " + "  ".join(f"{key} {'ok' if err < tol else 'WRONG'} {err:.0e}" for _, key, _, err in case))
            return result
    return _verdict(name, errors, tol, None, verbose)


def batchnorm_inference(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(x, gamma, beta, running_mean, running_var, eps) -> out`` (Algorithm 2).

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    def stats(d: int) -> tuple:
        rng = np.random.default_rng(100 + d)
        return rng.standard_normal(d), rng.uniform(0.5, 4.0, d), 1e-5
    _check_tol(tol)
    return _check_forward("batchnorm_inference", student_fn, F.batchnorm_inference, stats, tol, verbose)


def layernorm_forward(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(x, gamma, beta, eps) -> (out, cache)`` against ``functional.layernorm_forward``.

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    _check_tol(tol)
    return _check_forward("layernorm_forward", student_fn, F.layernorm_forward, lambda d: (1e-5,), tol, verbose)


def layernorm_backward(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                       tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` for layer norm (see ``batchnorm_backward``).

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` or ``forward`` gives a FAIL
            verdict, not an error.
    """
    return _check_backward("layernorm_backward", student_fn, forward or F.layernorm_forward,
                           F.layernorm_forward, F.layernorm_backward, tol, verbose)


def update_running_stats(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(running_mean, running_var, batch_mean, batch_var, m, momentum) -> (mean, var)``.

    Feeds 20 batches per shape through the student's update and the reference
    (``functional.update_running_stats``, unbiased m/(m−1) variance) and compares
    the running mean and variance after every update. A failure that matches one
    of the two common slips is named: momentum used as the weight of the old value
    (CS231n's convention, not torch's) and the biased batch variance (no m/(m−1)).

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    _check_callable(student_fn, "student_fn")
    _check_tol(tol)
    name = "update_running_stats"
    errors: list[tuple[tuple[int, ...], str, str, float]] = []
    low: set[str] = set()
    # the reference and the slips, as (momentum as the old value's weight?, biased variance?)
    slips = {(False, False): None, (True, False): "momentum", (False, True): "biased", (True, True): "both"}
    matches = {key: True for key in slips}
    for k, (n, d) in enumerate(SHAPES):
        rng = np.random.default_rng(k)
        start = (np.zeros(d), np.ones(d))
        mine = start
        chains = {key: start for key in slips}
        for _ in range(20):
            x = 2.0 + 3.0 * rng.standard_normal((n, d))
            args = (x.mean(axis=0), x.var(axis=0), n, 0.1)
            try:
                mine = tuple(_as_outputs(_call(student_fn, *mine, *args), ["mean", "var"], [(d,), (d,)]))
            except _Failure as why:
                return _verdict(name, errors, tol, ((n, d), str(why)), verbose)
            low |= _low_precision(["running mean", "running var"], mine)
            for (old_weight, biased) in slips:
                chain = chains[(old_weight, biased)]
                chains[(old_weight, biased)] = F.update_running_stats(
                    *chain, args[0], args[1], n, momentum=0.9 if old_weight else 0.1, unbiased=not biased)
                mean, var = chains[(old_weight, biased)]
                if max(rel_error(mine[0], mean), rel_error(mine[1], var)) >= tol:
                    matches[(old_weight, biased)] = False
            want = chains[(False, False)]
            errors.append(((n, d), "running mean", "the reference", rel_error(mine[0], want[0])))
            errors.append(((n, d), "running var", "the reference", rel_error(mine[1], want[1])))
    slip = next((slips[key] for key, ok in matches.items() if ok and slips[key]), None)
    diagnosis = {
        "momentum": _MOMENTUM_SLIP,
        "biased": _BIASED_SLIP,
        "both": f"Two slips. {_MOMENTUM_SLIP} {_BIASED_SLIP}",
        None: None,
    }[slip]
    return _verdict(name, errors, tol, None, verbose, low, diagnosis)


_MOMENTUM_SLIP = ("Your update uses momentum as the weight of the OLD value (CS231n's convention: "
                  "running = momentum·running + (1 − momentum)·batch). Here, as in torch, momentum is the weight "
                  "of the NEW batch: running = (1 − momentum)·running + momentum·batch.")
_BIASED_SLIP = ("Your running variance averages the biased batch variance σ_B²; Algorithm 2 (and torch) use the "
                "unbiased estimate m/(m − 1)·σ_B² (m = batch size).")


# --------------------------------------------------------------------------- spatial batch norm (images)

def spatial_batchnorm_forward(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(x, gamma, beta, eps) -> (out, cache)`` for x of shape (N, C, H, W).

    Compares with ``functional.spatial_batchnorm_forward`` (per-channel statistics over
    N·H·W values, as ``nn.BatchNorm2d``) on the shapes in ``SPATIAL_SHAPES``: one image,
    one channel, 1×1 feature maps and an ordinary batch.

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    _check_tol(tol)
    return _check_forward("spatial_batchnorm_forward", student_fn, F.spatial_batchnorm_forward, lambda c: (1e-5,),
                          tol, verbose, SPATIAL_SHAPES, _spatial_inputs)


def spatial_batchnorm_backward(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                               tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` for (N, C, H, W) input.

    Against ``functional.spatial_batchnorm_backward`` and finite differences of
    ``functional.spatial_batchnorm_forward``; ``forward`` is the function whose cache
    ``student_fn`` reads (default ``functional.spatial_batchnorm_forward``).

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` or ``forward`` gives a FAIL
            verdict, not an error.
    """
    return _check_backward("spatial_batchnorm_backward", student_fn, forward or F.spatial_batchnorm_forward,
                           F.spatial_batchnorm_forward, F.spatial_batchnorm_backward, tol, verbose,
                           SPATIAL_SHAPES, _spatial_inputs)


# --------------------------------------------------------------------------- group norm

def groupnorm_groups(d: int) -> int:
    """The number of groups the group-norm checkers use for D features: 4 when 4 divides D
    (groups of several features, the interesting case), else D > 1 (one feature per group), else 1.

    Raises:
        ValueError: ``d`` is not a positive int (bools included).
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d is the number of features, a positive int; got {d!r}.")
    return 4 if d % 4 == 0 else d


def groupnorm_forward(student_fn: Callable[..., Any], tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(x, gamma, beta, num_groups, eps) -> (out, cache)`` against
    ``functional.groupnorm_forward`` (Wu & He 2018); ``num_groups`` is ``groupnorm_groups(D)``.

    Raises:
        TypeError: ``student_fn`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` gives a FAIL verdict, not an error.
    """
    _check_tol(tol)
    return _check_forward("groupnorm_forward", student_fn, F.groupnorm_forward,
                          lambda d: (groupnorm_groups(d), 1e-5), tol, verbose)


def groupnorm_backward(student_fn: Callable[..., Any], forward: Callable[..., Any] | None = None,
                       tol: float = TOL, verbose: bool = True) -> CheckResult:
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` for group norm (see ``batchnorm_backward``);
    ``forward(x, gamma, beta, num_groups)`` defaults to ``functional.groupnorm_forward``.

    Raises:
        TypeError: ``student_fn`` or ``forward`` is not callable (pass the function, not its result).
        ValueError: ``tol`` not in (0, 1); ``student_fn`` returns something NumPy cannot read as numbers
            (a ragged list, strings). An exception inside ``student_fn`` or ``forward`` gives a FAIL
            verdict, not an error.
    """
    return _check_backward("groupnorm_backward", student_fn, forward or F.groupnorm_forward,
                           F.groupnorm_forward, F.groupnorm_backward, tol, verbose,
                           extra=lambda d: (groupnorm_groups(d),))
