"""Measurements taken on a model during training (usable as ``fit`` probes).

Sections: activation statistics (percentiles of a nonlinearity's input,
per-layer mean/std, saturation), gradient norms, internal covariate shift
(Santurkar et al. 2018, Def. 2.1) and loss-landscape measures.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------- activation statistics
#
# Every measurement here runs inside ``preserved_state(model)`` (loss-landscape
# section): the forward pass it needs may be taken in train mode (BN then
# normalizes with the statistics of the probe batch and would update its running
# averages), so module flags, buffers (running statistics), parameters, their
# ``.grad`` and the RNG states are restored afterwards. A probe therefore never changes the training run.

DEFAULT_PERCENTILES: tuple[float, ...] = (15.0, 50.0, 85.0)
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.GELU, nn.Identity)
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


def activation_modules(model: nn.Module) -> list[str]:
    """Names of the model's nonlinearities (Sigmoid, Tanh, ReLU, GELU, Identity), in order.

    For ``bnlab.models.mlp`` these are ``act1``, ``act2``, ...
    """
    return [name for name, m in model.named_modules() if name and isinstance(m, ACTIVATION_TYPES)]


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


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
    """
    _check_mode(mode)
    targets = _modules_by_name(model, modules)
    caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook_for(name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            caught[name] = (inputs[0].detach().clone(), output.detach().clone())
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in targets.items()]
    try:
        with preserved_state(model), torch.no_grad():
            model.train(mode == "train")
            model(x.to(_device_of(model)))
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
    """
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
    """
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
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
    """

    def __init__(self, x: torch.Tensor, module: str = "act3", q: Sequence[float] = DEFAULT_PERCENTILES,
                 every: int = 500, mode: str = "train") -> None:
        _check_mode(mode)
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.x, self.module, self.q, self.every, self.mode = x, module, tuple(q), int(every), mode

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
    """

    def __init__(self, x: torch.Tensor, modules: Sequence[str] | None = None, threshold: float = 4.0,
                 every: int = 500, mode: str = "train") -> None:
        _check_mode(mode)
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.x, self.modules, self.threshold, self.every, self.mode = x, modules, threshold, int(every), mode

    def __call__(self, ctx: Any) -> dict[str, dict[str, float]]:
        return activation_stats(ctx.model, self.x, self.modules, self.threshold, self.mode)


def stack_records(records: Sequence[Any]) -> Any:
    """Turn a list of (nested) dicts of numbers, one per probe call, into a dict of arrays.

    ``[{"act1": {"mean": 0.1}}, {"act1": {"mean": 0.3}}]`` → ``{"act1": {"mean": array([0.1, 0.3])}}``;
    a list of numbers or arrays becomes one stacked array (K, ...).
    """
    if len(records) == 0:
        raise ValueError("no records to stack (did the probe run?)")
    if isinstance(records[0], dict):
        keys = list(records[0])
        if any(list(r) != keys for r in records):
            raise ValueError("records have different keys; cannot stack them")
        return {k: stack_records([r[k] for r in records]) for k in keys}
    return np.stack([np.asarray(r, dtype=float) for r in records])


def drift(series: np.ndarray) -> np.ndarray:
    """How far a quantity wandered from its starting value: max_t |s_t − s_0| over axis 0.

    Args: series (K, ...) e.g. the median input of every unit at K probe steps, (K, C).
    Returns: (...) e.g. (C,) one drift per unit.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim == 0 or s.shape[0] == 0:
        raise ValueError(f"series must have at least one step along axis 0, got shape {s.shape}")
    return np.max(np.abs(s - s[:1]), axis=0)


def jitter(series: np.ndarray) -> np.ndarray:
    """How much a quantity jumps between consecutive probes: mean_t |s_{t+1} − s_t| over axis 0.

    ``drift`` measures how far a quantity wandered; ``jitter`` how restless it is
    from one probe to the next (noisy BN: small drift of the mean, large jitter).

    Args: series (K, ...) e.g. the median input of every unit at K ≥ 2 probe steps, (K, C).
    Returns: (...) e.g. (C,) one mean step-to-step change per unit.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim == 0 or s.shape[0] < 2:
        raise ValueError(f"series needs at least two steps along axis 0, got shape {s.shape}")
    return np.abs(np.diff(s, axis=0)).mean(axis=0)


def unit_drifts(steps: np.ndarray, percentiles: np.ndarray, upto: int | None = None,
                which: int = 1) -> np.ndarray:
    """Drift of one percentile of every unit's input over the probes at steps ≤ ``upto``.

    Args:
        steps: (K,) probe steps, e.g. the first output of ``History.probe("act3")``.
        percentiles: (K, P, C) the recorded percentiles of ``InputPercentiles``
            (P percentiles, default 15/50/85, of C units), the second output of ``History.probe``.
        upto: last step included (None = all probes).
        which: index into the P percentiles (1 = the median of the default 15/50/85).
    Returns: (C,) ``drift`` of that percentile of each unit.
    """
    s, p = np.asarray(steps), np.asarray(percentiles, dtype=float)
    if p.ndim != 3 or s.shape != (p.shape[0],):
        raise ValueError(f"need steps (K,) and percentiles (K, P, C); got {s.shape} and {p.shape}")
    if not 0 <= which < p.shape[1]:
        raise ValueError(f"which={which} is not one of the {p.shape[1]} recorded percentiles")
    keep = s <= upto if upto is not None else np.ones(len(s), dtype=bool)
    if not keep.any():
        raise ValueError(f"no probe at or before step {upto}; first probe at step {s[0] if len(s) else None}")
    return drift(p[keep, which, :])


def typical_unit(drifts: np.ndarray) -> int:
    """Index of the "typical" unit: the one whose drift is the median over units.

    Args: drifts (C,) e.g. from ``unit_drifts``. For even C, the upper of the two middle units.
    Returns: the unit index (ties broken by a stable sort, so the result is deterministic).
    """
    d = np.asarray(drifts, dtype=float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError(f"drifts must be a non-empty 1-d array (one per unit), got shape {d.shape}")
    return int(np.argsort(d, kind="stable")[len(d) // 2])


# ---------------------------------------------------------------- gradient norms


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
    """
    _check_mode(mode)
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
    """

    def __init__(self, every: int = 500, batch: tuple[torch.Tensor, torch.Tensor] | None = None,
                 params: str = "weights", mode: str = "train") -> None:
        _check_mode(mode)
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every, self.batch, self.params, self.mode = int(every), batch, params, mode

    def __call__(self, ctx: Any) -> dict[str, float]:
        x, y = self.batch if self.batch is not None else (ctx.x, ctx.y)
        return gradient_norms(ctx.model, x, y, ctx.loss_fn, self.params, self.mode)


# ---------------------------------------------------------------- internal covariate shift

_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's trainable parameters grouped into layers, in forward order.

    Each Linear (or Conv) layer starts a group holding its weight and bias; the
    parameters of the modules after it (a norm layer's γ and β, a noise layer's
    bias) join that group. For ``bnlab.models.mlp`` with BN the groups are
    fc1+norm1, fc2+norm2, fc3+norm3, out; without BN fc1, fc2, fc3, out.

    Returns:
        [(name of the Linear/Conv module, [its parameters, then its followers'])].
    """
    groups: list[tuple[str, list[nn.Parameter]]] = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if isinstance(module, _WEIGHT_LAYERS) or not groups:
            groups.append((name, own))
        else:
            groups[-1][1].extend(own)
    if not groups:
        raise ValueError("the model has no trainable parameters to group into layers")
    return groups


@dataclass
class ICS:
    """Internal covariate shift per layer at one step (Santurkar et al. 2018, Def. 2.1).

    For layer i (in forward order, K layers): G_i = ∇_{W_i} L(W_1, …, W_K) and
    G′_i = ∇_{W_i} L(W_1 − η G_1, …, W_{i−1} − η G_{i−1}, W_i, …, W_K), both on the
    same batch: G′_i is the gradient layer i would see after the layers below it
    took their SGD step. (G′_1 = G_1, so layer 1 has no shift.)

    Attributes:
        layers: (K,) layer names (see ``layer_groups``).
        ics: (K,) ‖G_i − G′_i‖₂.
        relative: (K,) ‖G_i − G′_i‖₂ / ‖G_i‖₂.
        cos: (K,) cos(G_i, G′_i).
        grad_norm: (K,) ‖G_i‖₂.
        step: the training step it was taken at (-1 if unknown).
        param_norm: (K,) ‖W_i‖₂ of the layer's parameters (all of its group), so
            that ``lr * grad_norm / param_norm`` is the relative size of its SGD step.
    """

    layers: list[str]
    ics: np.ndarray
    relative: np.ndarray
    cos: np.ndarray
    grad_norm: np.ndarray
    step: int = -1
    param_norm: np.ndarray | None = None


def _set_group(params: list[nn.Parameter], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def ics(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], lr: float,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
        train_mode: bool = True, step: int = -1) -> ICS:
    """Measure internal covariate shift per layer, Santurkar et al. (2018) Definition 2.1.

    A layer's parameters are its Linear weight and bias, or its weight and the
    following norm layer's γ, β (``layer_groups``). G is the gradient at the
    current weights; for layer i, the layers 1..i−1 are moved by one plain SGD
    step, w ← w − lr·G (no momentum or weight decay), and G′_i is layer i's
    gradient there, on the same batch with the same random draws (torch's RNG is
    reset before every pass, so a noisy layer sees the same noise). BN layers
    are probed in train mode (batch statistics) when ``train_mode``; the model's
    parameters, buffers (running statistics), gradients, modes and every RNG
    state are bit-identical afterwards.

    Args:
        model: the network. batch: (x (B, ...), y (B, ...)).
        lr: the SGD step size of the lower layers' update.
        loss_fn: ``loss_fn(model(x), y) -> scalar`` (e.g. ``bnlab.models.dln_loss``).
        train_mode: put the model in train mode for the probe (restored afterwards).
        step: the training step, stored in the result.

    Returns:
        an ``ICS`` with per-layer ‖G − G′‖₂, the same relative to ‖G‖₂, and cos(G, G′), each (K,).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    x, y = batch
    groups = layer_groups(model)
    names = [name for name, _ in groups]
    with preserved_state(model):
        if train_mode:
            model.train()
        rng = torch.get_rng_state()

        def grads_of(params: list[nn.Parameter]) -> torch.Tensor:
            torch.set_rng_state(rng)
            loss = loss_fn(model(x), y)
            if loss.ndim != 0:
                raise ValueError(f"the loss must be a scalar tensor, got shape {tuple(loss.shape)}")
            g = torch.autograd.grad(loss, params, allow_unused=True)
            return torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1) for p, gi in zip(params, g)])

        everything = [p for _, params in groups for p in params]
        g_all = grads_of(everything)
        g_groups, offset = [], 0
        for _, params in groups:
            n = sum(p.numel() for p in params)
            g_groups.append(g_all[offset:offset + n])
            offset += n
        shifted = [g_groups[0]]
        for i in range(1, len(groups)):
            below = groups[i - 1][1]
            stepped, offset = [], 0
            for p in below:  # layer i-1 takes its SGD step; layers < i-1 already have
                stepped.append(p.detach() - lr * g_groups[i - 1][offset:offset + p.numel()].view_as(p))
                offset += p.numel()
            _set_group(below, stepped)
            shifted.append(grads_of(groups[i][1]))
    g_norm = np.array([float(torch.linalg.vector_norm(g)) for g in g_groups])
    diff = np.array([float(torch.linalg.vector_norm(g - h)) for g, h in zip(g_groups, shifted)])
    h_norm = np.array([float(torch.linalg.vector_norm(h)) for h in shifted])
    dots = np.array([float(torch.dot(g, h)) for g, h in zip(g_groups, shifted)])
    w_norm = np.array([float(torch.linalg.vector_norm(torch.cat([p.detach().reshape(-1) for p in params])))
                       for _, params in groups])
    return ICS(layers=names, ics=diff, relative=diff / np.maximum(g_norm, 1e-30),
               cos=dots / np.maximum(g_norm * h_norm, 1e-30), grad_norm=g_norm, step=step, param_norm=w_norm)


def ics_probe(every: int = 100, train_mode: bool = True) -> Callable[[Any], ICS]:
    """A ``fit`` probe measuring ``ics`` on the step's batch every ``every`` steps.

    ``fit(..., probes={"ics": ics_probe(every=50)})`` (or ``fit_full_batch`` for the
    deep linear network); the returned function reads a ``bnlab.train.ProbeContext``
    (model, x, y, lr, loss_fn, step) and has an ``every`` attribute that ``fit``
    honours. Stack its records with ``stack_ics``.
    """
    if int(every) < 1:
        raise ValueError(f"every must be a positive number of steps, got {every}")

    def probe(ctx: Any) -> ICS:
        return ics(ctx.model, (ctx.x, ctx.y), ctx.lr, ctx.loss_fn, train_mode=train_mode, step=int(ctx.step))

    probe.every = int(every)  # type: ignore[attr-defined]
    return probe


def stack_ics(records: Sequence[ICS]) -> dict[str, Any]:
    """Stack T ``ICS`` records (one run) into arrays for plotting.

    Returns a dict with "layers" (K names), "step" (T,), and "ics", "relative",
    "cos", "grad_norm", each (T, K); also "param_norm" (T, K) when every record has it.
    """
    if len(records) == 0:
        raise ValueError("no ICS records to stack (did the probe run?)")
    out = {
        "layers": list(records[0].layers),
        "step": np.array([r.step for r in records]),
        "ics": np.stack([r.ics for r in records]),
        "relative": np.stack([r.relative for r in records]),
        "cos": np.stack([r.cos for r in records]),
        "grad_norm": np.stack([r.grad_norm for r in records]),
    }
    if all(r.param_norm is not None for r in records):
        out["param_norm"] = np.stack([r.param_norm for r in records])
    return out


def ics_series(histories: Sequence[Any], key: str, probe: str = "ics") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One ICS quantity of several runs (seeds), stacked for plotting bands over seeds.

    Args:
        histories: S ``History`` objects whose ``probes[probe]`` holds ``ICS`` records.
        key: "ics", "relative", "cos", "grad_norm", "param_norm", or "step_size"
            (lr · ‖G_i‖ / ‖W_i‖, the relative size of layer i's SGD step; uses each run's lr).
        probe: the probe's name in ``fit(..., probes=...)``.

    Returns:
        steps (T,), values (S, T, K) and the K layer names; runs of different length
        are cut to the shortest (T probe steps).
    """
    if len(histories) == 0:
        raise ValueError("no histories given")
    stacks = []
    for h in histories:
        if probe not in h.probes:
            raise ValueError(f"the run has no probe {probe!r}; it has {sorted(h.probes)}")
        st = stack_ics(h.probes[probe])
        if key == "step_size":
            if "param_norm" not in st:
                raise ValueError("the ICS records carry no param_norm; re-run with the current ics probe")
            st["step_size"] = float(h.config["lr"]) * st["grad_norm"] / np.maximum(st["param_norm"], 1e-30)
        if key not in st or key in ("layers", "step"):
            raise ValueError(f"unknown ICS quantity {key!r}; use ics, relative, cos, grad_norm, param_norm or step_size")
        stacks.append(st)
    n = min(len(st["step"]) for st in stacks)
    return stacks[0]["step"][:n], np.stack([st[key][:n] for st in stacks]), stacks[0]["layers"]


# ---------------------------------------------------------------- loss landscape

DEFAULT_STEP_MULTIPLIERS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""Step sizes of the landscape probes, in units of the learning rate (η = c · lr)."""

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


def _loss_and_grad(model: nn.Module, loss_of: LossOf, params: list[nn.Parameter],
                   rng: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Loss and flattened gradient (P,), with torch's RNG reset to ``rng`` first (same noise every call)."""
    torch.set_rng_state(rng)
    loss = loss_of(model)
    if loss.ndim != 0:
        raise ValueError(f"the loss must be a scalar tensor, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])
    return float(loss.detach()), flat.detach()


@dataclass
class Landscape:
    """The loss landscape along the gradient at one point w (Santurkar et al. 2018, Sec. 3.1, Fig. 4).

    With g = ∇L(w) on a fixed batch and step sizes η_k (k = 1..K):

    Attributes:
        etas: (K,) the step sizes η_k.
        loss: L(w).
        losses: (K,) L(w − η_k g).
        grad_norm: ‖g‖₂ over all trainable parameters.
        grad_change: (K,) ‖∇L(w − η_k g) − g‖₂.
        step: the training step it was taken at (-1 if unknown).
    """

    etas: np.ndarray
    loss: float
    losses: np.ndarray
    grad_norm: float
    grad_change: np.ndarray
    step: int = -1

    @property
    def loss_range(self) -> float:
        """max_k L(w − η_k g) − min_k L(w − η_k g): how much the loss varies along the step."""
        return float(np.max(self.losses) - np.min(self.losses))

    @property
    def predictiveness(self) -> float:
        """max_k ‖∇L(w − η_k g) − g‖ (smaller: the gradient predicts the gradient nearby better)."""
        return float(np.max(self.grad_change))

    @property
    def relative_predictiveness(self) -> float:
        """``predictiveness`` / ‖g‖: gradient change relative to the gradient itself."""
        return self.predictiveness / max(self.grad_norm, 1e-30)

    @property
    def beta_per_eta(self) -> np.ndarray:
        """(K,) ‖∇L(w − η_k g) − g‖ / ‖η_k g‖: the gradient's Lipschitz ratio over each step."""
        return self.grad_change / np.maximum(self.etas * self.grad_norm, 1e-30)

    @property
    def beta_smoothness(self) -> float:
        """Effective β-smoothness: max_k ‖∇L(w − η_k g) − g‖ / ‖η_k g‖."""
        return float(np.max(self.beta_per_eta))


def landscape(model: nn.Module, loss_of: LossOf, lr: float,
              multipliers: Sequence[float] = DEFAULT_STEP_MULTIPLIERS, train_mode: bool = True,
              step: int = -1) -> Landscape:
    """Probe the loss along the gradient direction at the model's current weights w.

    Computes g = ∇L(w), then L(w − ηg) and ∇L(w − ηg) for η = c · lr, c in ``multipliers``,
    all on the same batch (``loss_of`` must evaluate the same data every call) and with the
    same random draws (torch's RNG is reset before every evaluation, so a noisy layer sees
    the same noise at every point). BN layers are probed in train mode (batch statistics)
    when ``train_mode``. The model's parameters, buffers (running statistics), gradients,
    modes and every RNG state are bit-identical afterwards.

    Args:
        model: the network; every parameter with ``requires_grad`` is part of w.
        loss_of: model → scalar loss on a fixed batch (``batch_loss(loss_fn, x, y)``, or a
            full-batch loss such as the deep linear network's).
        lr: the learning rate the step sizes are multiples of.
        multipliers: (K,) positive step-size multipliers, default (0.5, 1, 2, 4).
        train_mode: put the model in train mode for the probe (restored afterwards).
        step: the training step, stored in the result.

    Returns:
        a ``Landscape`` (losses (K,), gradient changes (K,), and the derived measures).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    mult = np.asarray(list(multipliers), dtype=float)
    if mult.ndim != 1 or len(mult) == 0 or not np.all(mult > 0):
        raise ValueError(f"multipliers must be a non-empty sequence of positive numbers, got {multipliers!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters to probe")
    etas = mult * lr
    with preserved_state(model):
        if train_mode:
            model.train()
        rng = torch.get_rng_state()
        start = [p.detach().clone() for p in params]
        loss0, g = _loss_and_grad(model, loss_of, params, rng)
        losses, changes = [], []
        for eta in etas:
            with torch.no_grad():
                offset = 0
                for p, p0 in zip(params, start):
                    n = p.numel()
                    p.copy_(p0 - float(eta) * g[offset:offset + n].view_as(p))
                    offset += n
            loss_k, g_k = _loss_and_grad(model, loss_of, params, rng)
            losses.append(loss_k)
            changes.append(float(torch.linalg.vector_norm(g_k - g)))
    return Landscape(etas=etas, loss=loss0, losses=np.asarray(losses), grad_norm=float(torch.linalg.vector_norm(g)),
                     grad_change=np.asarray(changes), step=step)


def landscape_probe(every: int = 100, multipliers: Sequence[float] = DEFAULT_STEP_MULTIPLIERS,
                    train_mode: bool = True) -> Callable[[Any], Landscape]:
    """A ``fit`` probe taking ``landscape`` on the step's batch every ``every`` steps.

    ``fit(..., probes={"landscape": landscape_probe(every=100)})``; the returned function
    reads a ``bnlab.train.ProbeContext`` (model, x, y, lr, loss_fn, step) and has an ``every``
    attribute that ``fit`` honours. Stack its records with ``stack_landscapes``.
    """
    if int(every) < 1:
        raise ValueError(f"every must be a positive number of steps, got {every}")
    mult = tuple(float(c) for c in multipliers)

    def probe(ctx: Any) -> Landscape:
        return landscape(ctx.model, batch_loss(ctx.loss_fn, ctx.x, ctx.y), ctx.lr, mult,
                         train_mode=train_mode, step=int(ctx.step))

    probe.every = int(every)  # type: ignore[attr-defined]
    return probe


def stack_landscapes(records: Sequence[Landscape]) -> dict[str, np.ndarray]:
    """Stack T ``Landscape`` records (one run) into arrays for plotting.

    Returns a dict with "step" (T,), "etas" (K,), "loss" (T,), "losses" (T, K), "grad_norm" (T,),
    "grad_change" (T, K), "relative_grad_change" (T, K), "beta" (T, K), and the per-step
    summaries "loss_range", "predictiveness", "relative_predictiveness", "beta_smoothness" (T,).
    """
    if len(records) == 0:
        raise ValueError("no landscape records to stack")
    grad_norm = np.array([r.grad_norm for r in records])
    change = np.stack([r.grad_change for r in records])
    return {
        "step": np.array([r.step for r in records]),
        "etas": np.asarray(records[0].etas),
        "loss": np.array([r.loss for r in records]),
        "losses": np.stack([r.losses for r in records]),
        "grad_norm": grad_norm,
        "grad_change": change,
        "relative_grad_change": change / np.maximum(grad_norm, 1e-30)[:, None],
        "beta": np.stack([r.beta_per_eta for r in records]),
        "loss_range": np.array([r.loss_range for r in records]),
        "predictiveness": np.array([r.predictiveness for r in records]),
        "relative_predictiveness": np.array([r.relative_predictiveness for r in records]),
        "beta_smoothness": np.array([r.beta_smoothness for r in records]),
    }


# Santurkar et al. (2018), Theorem 4.1: the BN gradient-norm bound, checked per unit.

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


def window_means(steps: Sequence[int], values: Sequence[float], checkpoints: Sequence[int],
                 window: int) -> np.ndarray:
    """Mean of a probe's values over the ``window`` steps up to each checkpoint.

    One landscape probe looks at one minibatch and is noisy; averaging the probes in
    (c − window, c] gives a stable value per checkpoint c.

    Args:
        steps: (T,) the probe steps. values: (T,) one value per probe step.
        checkpoints: (C,) steps c. window: width of the averaging window in steps.

    Returns:
        (C,) the means; a ValueError if a window holds no probe.
    """
    steps_a, values_a = np.asarray(steps), np.asarray(values, dtype=float)
    if steps_a.shape != values_a.shape or steps_a.ndim != 1:
        raise ValueError(f"steps and values must be 1-D of the same length, got {steps_a.shape} and {values_a.shape}")
    if int(window) < 1:
        raise ValueError(f"window must be a positive number of steps, got {window}")
    out = []
    for c in checkpoints:
        inside = (steps_a > c - window) & (steps_a <= c)
        if not inside.any():
            raise ValueError(f"no probe in the window ({c - window}, {c}]: probe more often or widen the window")
        out.append(values_a[inside].mean())
    return np.asarray(out)


def bn_gradient_probe(every: int = 500, train_mode: bool = True) -> Callable[[Any], dict[str, BNGradientTerms]]:
    """A ``fit`` probe recording ``bn_gradient_terms`` on the step's batch every ``every`` steps."""
    if int(every) < 1:
        raise ValueError(f"every must be a positive number of steps, got {every}")

    def probe(ctx: Any) -> dict[str, BNGradientTerms]:
        return bn_gradient_terms(ctx.model, batch_loss(ctx.loss_fn, ctx.x, ctx.y), train_mode=train_mode)

    probe.every = int(every)  # type: ignore[attr-defined]
    return probe
