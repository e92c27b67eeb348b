"""Activation statistics: percentiles of a nonlinearity's input, per-layer mean/std and saturation
(Ioffe & Szegedy 2015, Fig. 1(b, c))."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from bnlab.probes.core import (_check_mode, _check_model, _check_tensor, _device_of, _modules_by_name, check_every,
                               preserved_state)



#
# Every measurement here runs inside ``preserved_state(model)`` (loss-landscape
# section): the forward pass it needs may be taken in train mode (BN then
# normalizes with the statistics of the probe batch and would update its running
# averages), so module flags, buffers (running statistics), parameters, their
# ``.grad`` and the RNG states are restored afterwards. A probe therefore never changes the training run.

DEFAULT_PERCENTILES: tuple[float, ...] = (15.0, 50.0, 85.0)
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.GELU, nn.Identity)
def activation_modules(model: nn.Module) -> list[str]:
    """Names of the model's nonlinearities (Sigmoid, Tanh, ReLU, GELU, Identity), in order.

    For ``bnlab.models.mlp`` these are ``act1``, ``act2``, ...

    Raises:
        TypeError: ``model`` not an ``nn.Module``.
    """
    _check_model(model)
    return [name for name, m in model.named_modules() if name and isinstance(m, ACTIVATION_TYPES)]


def record(model: nn.Module, x: torch.Tensor, modules: Sequence[str],
           mode: str = "train") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of the named submodules during one forward pass of ``x``.

    Forward hooks catch what each module receives and returns; the pass runs
    without gradients inside ``preserved_state(model)``, so the model is left untouched.

    Args:
        model: any ``nn.Module`` (e.g. ``bnlab.models.mlp``).
        x: (N, ...) a batch of inputs the model accepts.
        modules: names from ``model.named_modules()``, e.g. ``["act3"]``.
        mode: "train" (BN layers normalize with the batch statistics of ``x``,
            as during training) or "eval" (BN layers use their running statistics).

    Returns:
        name → (input, output), detached tensors of shape (N, C, ...) each.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; a name in ``modules`` the model does not have, or a module
            the forward pass does not call; a model that cannot take ``x``.
        TypeError: ``model`` not an ``nn.Module``; ``modules`` a string; ``x`` not a floating-point tensor.
    """
    _check_mode(mode)
    targets = _modules_by_name(model, modules)
    _check_tensor(x, "x")
    caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook_for(name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            caught[name] = (inputs[0].detach().clone(), output.detach().clone())
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in targets.items()]
    try:
        with preserved_state(model), torch.no_grad():
            model.train(mode == "train")
            try:
                model(x.to(_device_of(model)))
            except RuntimeError as err:
                raise ValueError(f"the model cannot take x of shape {tuple(x.shape)} ({x.dtype}): {err}. "
                                 "Pass a batch shaped like the model's training inputs.") from err
    finally:
        for h in handles:
            h.remove()
    not_called = [n for n in modules if n not in caught]
    if not_called:
        raise ValueError(f"modules {not_called} were not called in the forward pass, so they have no input")
    return caught


def record_inputs(model: nn.Module, x: torch.Tensor, modules: Sequence[str],
                  mode: str = "train") -> dict[str, torch.Tensor]:
    """The input of each named submodule in one forward pass of ``x`` (model left untouched).

    For an activation module of ``bnlab.models.mlp`` this is the pre-activation:
    the output of the BN layer when BN sits before the nonlinearity.

    Returns: name → detached tensor (N, C, ...). See ``record`` for ``mode``.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; a name in ``modules`` the model does not have, or a module
            the forward pass does not call; a model that cannot take ``x``.
        TypeError: ``model`` not an ``nn.Module``; ``modules`` a string; ``x`` not a floating-point tensor.
    """
    return {name: io[0] for name, io in record(model, x, modules, mode).items()}


def _per_unit(z: torch.Tensor) -> np.ndarray:
    """(N, C, ...) → (M, C) float64: one column per unit/channel, M = N·(spatial size)."""
    if z.ndim < 2:
        raise ValueError(f"expected a batch of shape (N, C, ...), got shape {tuple(z.shape)}")
    c = z.shape[1]
    return z.detach().cpu().double().transpose(0, 1).reshape(c, -1).T.numpy()


def unit_percentiles(z: torch.Tensor, q: Sequence[float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """Percentiles of each unit's values over a batch (``np.percentile``, linear interpolation).

    Args:
        z: (N, C) or (N, C, H, W) values, e.g. the input to a sigmoid layer.
        q: percentiles in [0, 100], e.g. (15, 50, 85) as in Ioffe & Szegedy's Fig. 1.

    Returns: (P, C) array, row j = the q[j]-th percentile of every unit.

    Raises:
        TypeError: ``z`` not a floating-point tensor.
        ValueError: ``q`` empty or with a value outside [0, 100]; ``z`` with fewer than 2 dimensions.
    """
    _check_tensor(z, "z")
    q = [float(v) for v in q]
    if not q or any(not 0.0 <= v <= 100.0 for v in q):
        raise ValueError(f"percentiles must be a non-empty list of numbers in [0, 100], got {q}")
    return np.percentile(_per_unit(z), q, axis=0)


def layer_stats(z_in: torch.Tensor, z_out: torch.Tensor | None = None, threshold: float = 4.0) -> dict[str, float]:
    """Summary of one nonlinearity over a batch: the statistics of its input (and output).

    Args:
        z_in: (N, C, ...) the input of the nonlinearity (the pre-activation).
        z_out: (N, C, ...) its output, or None.
        threshold: a unit is saturated on an example when |input| > threshold; for a
            sigmoid, |z| > 4 means σ'(z) < 0.018, under a fourteenth of its maximum 1/4.

    Returns: {"mean", "std", "saturated"} of the input over all N·C entries (std
    with the 1/M normalization), plus {"out_mean", "out_std"} when z_out is given.

    Raises:
        ValueError: ``threshold`` not > 0.
        AttributeError: ``z_in`` or ``z_out`` not a torch tensor.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    z = z_in.detach().double()
    stats = {"mean": float(z.mean()), "std": float(z.std(correction=0)),
             "saturated": float((z.abs() > threshold).double().mean())}
    if z_out is not None:
        o = z_out.detach().double()
        stats.update(out_mean=float(o.mean()), out_std=float(o.std(correction=0)))
    return stats


def activation_stats(model: nn.Module, x: torch.Tensor, modules: Sequence[str] | None = None,
                     threshold: float = 4.0, mode: str = "train") -> dict[str, dict[str, float]]:
    """Per-layer mean/std of the input (and output) of each nonlinearity and its saturated fraction.

    Args:
        model: the network; left untouched (see ``preserved_state``).
        x: (N, ...) the probe batch.
        modules: names of the nonlinearities; default ``activation_modules(model)``.
        threshold, mode: see ``layer_stats`` and ``record``.

    Returns: name → {"mean", "std", "saturated", "out_mean", "out_std"}.

    Raises:
        ValueError: no nonlinearity in the model (``modules`` None); ``mode`` not "train"/"eval"; a name
            in ``modules`` the model does not have, or a module the forward pass does not call; a model
            that cannot take ``x``; ``threshold`` not > 0.
        TypeError: ``model`` not an ``nn.Module``; ``x`` not a floating-point tensor.
    """
    names = list(modules) if modules is not None else activation_modules(model)
    if not names:
        raise ValueError("the model has no Sigmoid/Tanh/ReLU/GELU/Identity module; name the modules to probe")
    return {name: layer_stats(zi, zo, threshold) for name, (zi, zo) in record(model, x, names, mode).items()}


def probe_batch(data: Any, n: int = 1000, seed: int = 0, split: str = "test") -> torch.Tensor:
    """A fixed random subset of ``n`` images to measure on, the same at every probe call.

    Args:
        data: a ``bnlab.data.Dataset``. split: "test" or "train".

    Returns: (n, 1, 28, 28) for (Fashion-)MNIST, on the data's device.

    Raises:
        ValueError: ``split`` not "test"/"train"; ``n`` outside 1..(examples in the split).
        TypeError: ``data`` not a ``bnlab.data.Dataset``; ``n`` not an int.
    """
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    if not hasattr(data, "x_test"):
        raise TypeError(f"data must be a bnlab.data.Dataset (e.g. bnlab.data.load()), got {type(data).__name__}.")
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int number of examples, got {n!r}.")
    x = data.x_test if split == "test" else data.x_train
    if not 1 <= n <= len(x):
        raise ValueError(f"n must be between 1 and the {len(x)} {split} examples, got {n}")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx.to(x.device)]


class InputPercentiles:
    """``fit`` probe: per-unit percentiles of the input to one module over a fixed probe batch.

    This is the measurement of Ioffe & Szegedy (2015), Fig. 1(b, c): the 15th,
    50th and 85th percentiles of the input to a sigmoid over training. Each call
    returns a (P, C) array (P percentiles, C units); ``History.probe(name)``
    stacks the calls into (K, P, C).

    Args:
        x: (N, ...) the probe batch (e.g. ``probe_batch(data)``, 1000 test images).
        module: the module whose input is recorded, e.g. "act3" (the last hidden sigmoid
            of ``bnlab.models.mlp``; its input is the BN output when BN is on).
        q: the percentiles.
        every: run every this many steps (``fit`` reads this attribute).
        mode: "train" (default): BN normalizes with the probe batch's own statistics,
            i.e. the distribution the sigmoid sees in a training step; "eval": with the
            running statistics, i.e. what it sees at inference.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``every`` < 1. A call raises as ``record`` and
            ``unit_percentiles``.
        TypeError: ``every`` not an int.
    """

    def __init__(self, x: torch.Tensor, module: str = "act3", q: Sequence[float] = DEFAULT_PERCENTILES,
                 every: int = 500, mode: str = "train") -> None:
        _check_mode(mode)
        every = check_every(every)
        self.x, self.module, self.q, self.every, self.mode = x, module, tuple(q), every, mode

    def measure(self, model: nn.Module) -> np.ndarray:
        """(P, C) percentiles of the module's input on the probe batch, model left untouched."""
        z = record_inputs(model, self.x, [self.module], self.mode)[self.module]
        return unit_percentiles(z, self.q)

    def __call__(self, ctx: Any) -> np.ndarray:
        return self.measure(ctx.model)


class ActivationStats:
    """``fit`` probe: ``activation_stats`` of every nonlinearity on a fixed probe batch.

    Each call returns name → {"mean", "std", "saturated", "out_mean", "out_std"};
    turn the list ``History.probes[name]`` into arrays with ``stack_records``.
    Arguments as in ``activation_stats``; ``every`` as in ``InputPercentiles``.

    Raises:
        ValueError: ``mode`` not "train"/"eval"; ``every`` < 1. A call raises as ``activation_stats``.
        TypeError: ``every`` not an int.
    """

    def __init__(self, x: torch.Tensor, modules: Sequence[str] | None = None, threshold: float = 4.0,
                 every: int = 500, mode: str = "train") -> None:
        _check_mode(mode)
        every = check_every(every)
        self.x, self.modules, self.threshold, self.every, self.mode = x, modules, threshold, every, mode

    def __call__(self, ctx: Any) -> dict[str, dict[str, float]]:
        return activation_stats(ctx.model, self.x, self.modules, self.threshold, self.mode)


def stack_records(records: Sequence[Any]) -> Any:
    """Turn a list of (nested) dicts of numbers, one per probe call, into a dict of arrays.

    ``[{"act1": {"mean": 0.1}}, {"act1": {"mean": 0.3}}]`` → ``{"act1": {"mean": array([0.1, 0.3])}}``;
    a list of numbers or arrays becomes one stacked array (K, ...).

    Raises:
        ValueError: ``records`` empty; dicts with different keys; values that are not numbers or
            arrays of one shape.
    """
    if len(records) == 0:
        raise ValueError("no records to stack (did the probe run?)")
    if isinstance(records[0], dict):
        keys = list(records[0])
        if any(list(r) != keys for r in records):
            raise ValueError("records have different keys; cannot stack them")
        return {k: stack_records([r[k] for r in records]) for k in keys}
    return np.stack([np.asarray(r, dtype=float) for r in records])


