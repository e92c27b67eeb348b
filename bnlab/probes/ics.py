"""Internal covariate shift per layer (Santurkar et al. 2018, Def. 2.1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from bnlab.probes.core import _check_model, _check_tensor, preserved_state




_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's trainable parameters grouped into layers, in forward order.

    Each Linear (or Conv) layer starts a group holding its weight and bias; the
    parameters of the modules after it (a norm layer's γ and β, a noise layer's
    bias) join that group. For ``bnlab.models.mlp`` with BN the groups are
    fc1+norm1, fc2+norm2, fc3+norm3, out; without BN fc1, fc2, fc3, out.

    Returns:
        [(name of the Linear/Conv module, [its parameters, then its followers'])].

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model has no trainable parameters.
    """
    _check_model(model)
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
        lower_step: (K,) η‖G_{<i}‖₂, how far the layers below i moved (the norm of
            their joint SGD step, all of layers 1..i−1 together); 0 for layer 1.
        per_movement: (K,) ‖G_i − G′_i‖₂ / (η‖G_{<i}‖₂), ICS per unit of lower-layer
            movement (NaN for layer 1, which has none). G_i − G′_i is the change of
            layer i's gradient caused by moving the lower layers by ηG_{<i}, so if the
            loss is β-smooth (gradient β-Lipschitz, Santurkar et al. 2018 §3.1) then
            ‖G_i − G′_i‖ ≤ β·η‖G_{<i}‖: this ratio is a lower bound on that β along the
            lower layers' step. A network can have large ICS because its lower layers
            take large steps, or because its gradient is sensitive to them; this
            separates the two. In absolute parameter units: see ``relative_per_movement``.
        lower_norm: (K,) ‖W_{<i}‖₂, the norm of all the parameters of layers 1..i−1 together; 0 for layer 1.
        relative_per_movement: (K,) (‖G_i − G′_i‖₂ / ‖G_i‖₂) / (η‖G_{<i}‖₂ / ‖W_{<i}‖₂), the relative change of
            layer i's gradient per unit of *relative* lower-layer movement (NaN for layer 1). Both sides are
            dimensionless: a layer followed by BN computes the same function at any scale of its weight
            (scale invariance, Ioffe & Szegedy 2015 §3.3), so what a step ηG does to it is the relative
            step ηG/‖W‖ (its effective step is η/‖W‖ along the sphere), and the absolute ratio
            ``per_movement`` falls as 1/‖W‖ when BN's weights grow, with no change in the function.
            This ratio does not; dividing by ‖G_i‖ also removes the overall gradient scale.
    """

    layers: list[str]
    ics: np.ndarray
    relative: np.ndarray
    cos: np.ndarray
    grad_norm: np.ndarray
    step: int = -1
    param_norm: np.ndarray | None = None
    lower_step: np.ndarray | None = None
    per_movement: np.ndarray | None = None
    lower_norm: np.ndarray | None = None
    relative_per_movement: np.ndarray | None = None


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
        an ``ICS`` with per-layer ‖G − G′‖₂, the same relative to ‖G‖₂, cos(G, G′), the same per unit
        of lower-layer movement ‖G − G′‖₂ / (lr·‖G_{<i}‖₂), and the relative ICS per unit of relative
        lower-layer movement (lr·‖G_{<i}‖₂ / ‖W_{<i}‖₂), each (K,).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``batch`` is not a pair (x, y); ``x`` is not a
            float tensor.
        ValueError: ``lr`` <= 0; the model has no trainable parameters; ``loss_fn`` does not return
            a scalar.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"batch must be the pair (x, y) of inputs and labels, got {type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                        + "; e.g. ics(model, (x, y), lr=0.1).")
    x, y = batch
    _check_tensor(x, "x")
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
    lower_step = lr * np.sqrt(np.concatenate([[0.0], np.cumsum(g_norm ** 2)[:-1]]))
    lower_norm = np.sqrt(np.concatenate([[0.0], np.cumsum(w_norm ** 2)[:-1]]))
    relative = diff / np.maximum(g_norm, 1e-30)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_movement = np.where(lower_step > 0, diff / np.where(lower_step > 0, lower_step, 1.0), np.nan)
        moved = (lower_step > 0) & (lower_norm > 0)
        relative_move = np.where(moved, lower_step / np.where(moved, lower_norm, 1.0), 1.0)
        relative_per_movement = np.where(moved, relative / relative_move, np.nan)
    return ICS(layers=names, ics=diff, relative=relative,
               cos=dots / np.maximum(g_norm * h_norm, 1e-30), grad_norm=g_norm, step=step, param_norm=w_norm,
               lower_step=lower_step, per_movement=per_movement, lower_norm=lower_norm,
               relative_per_movement=relative_per_movement)


def ics_probe(every: int = 100, train_mode: bool = True) -> Callable[[Any], ICS]:
    """A ``fit`` probe measuring ``ics`` on the step's batch every ``every`` steps.

    ``fit(..., probes={"ics": ics_probe(every=50)})`` (or ``fit_full_batch`` for the
    deep linear network); the returned function reads a ``bnlab.train.ProbeContext``
    (model, x, y, lr, loss_fn, step) and has an ``every`` attribute that ``fit``
    honours. Stack its records with ``stack_ics``.

    Raises:
        ValueError: ``every`` < 1.
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
    "cos", "grad_norm", each (T, K); also "param_norm", "lower_step", "per_movement", "lower_norm"
    and "relative_per_movement" (T, K) when every record has them.

    Raises:
        ValueError: ``records`` is empty.
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
    for key in ("param_norm", "lower_step", "per_movement", "lower_norm", "relative_per_movement"):
        if all(getattr(r, key) is not None for r in records):
            out[key] = np.stack([getattr(r, key) for r in records])
    return out


def ics_series(histories: Sequence[Any], key: str, probe: str = "ics") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One ICS quantity of several runs (seeds), stacked for plotting bands over seeds.

    Args:
        histories: S ``History`` objects whose ``probes[probe]`` holds ``ICS`` records.
        key: "ics", "relative", "cos", "grad_norm", "param_norm", "lower_step",
            "per_movement" (ICS per unit of lower-layer movement), "lower_norm",
            "relative_per_movement" (relative ICS per unit of relative lower-layer movement), or "step_size"
            (lr · ‖G_i‖ / ‖W_i‖, the relative size of layer i's SGD step; uses each run's lr).
        probe: the probe's name in ``fit(..., probes=...)``.

    Returns:
        steps (T,), values (S, T, K) and the K layer names; runs of different length
        are cut to the shortest (T probe steps).

    Raises:
        ValueError: no histories; a run without the probe ``probe``; an unknown ``key``; "step_size"
            asked of records without ``param_norm``.
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
            raise ValueError(f"unknown ICS quantity {key!r}; use ics, relative, cos, grad_norm, param_norm, "
                             f"lower_step, per_movement, lower_norm, relative_per_movement or step_size")
        stacks.append(st)
    n = min(len(st["step"]) for st in stacks)
    return stacks[0]["step"][:n], np.stack([st[key][:n] for st in stacks]), stacks[0]["layers"]


