"""Train only chosen parameters: BN's γ and β, the output layer, a random subset, or everything.

Frankle, Schwab & Morcos (2021, "Training BatchNorm and Only BatchNorm") freeze every
weight at its random initialisation and train only BN's affine parameters γ and β;
their controls train the output layer only, or an equal number of randomly chosen
weights elsewhere. ``train_only`` prepares a model for each of these.

Frozen parameters stay bit-identical under ``bnlab.train.fit`` (plain SGD): a frozen
tensor has ``requires_grad=False``, so it gets no gradient and ``torch.optim.SGD``
skips it; in a randomly chosen subset the gradient of every entry outside the subset
is zeroed by a hook, so with momentum 0 and weight decay 0 its update is exactly 0.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CHOICES", "train_only", "trainable_count", "bn_affine_names"]

CHOICES = ("all", "bn_affine", "output", "random", "random_per_unit", "all_but_beta")
"""What ``train_only`` can leave trainable."""


def bn_affine_names(model: nn.Module) -> list[str]:
    """Names of the normalization layers' γ and β (``norm{k}.weight``, ``norm{k}.bias``).

    A parameter counts as γ or β when its module has ``running_mean`` or is named
    ``norm*`` (``bnlab.models.mlp``'s naming), and it is 1-d.
    """
    names = []
    for mod_name, module in model.named_modules():
        is_norm = hasattr(module, "running_mean") or mod_name.split(".")[-1].startswith("norm")
        if not is_norm:
            continue
        for p_name, p in module.named_parameters(recurse=False):
            if p.ndim == 1:
                names.append(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def trainable_count(model: nn.Module) -> int:
    """Number of scalar parameters that training can change (entries outside a random
    subset's mask do not count)."""
    total = 0
    for p in model.parameters():
        if not p.requires_grad:
            continue
        mask = getattr(p, "_train_mask", None)
        total += int(mask.sum()) if mask is not None else p.numel()
    return total


def train_only(model: nn.Module, which: str, count: int | None = None, seed: int = 0,
               output: str = "out", per_unit: int = 2) -> nn.Module:
    """Freeze every parameter of ``model`` except the chosen ones (in place; returns ``model``).

    Args:
        model: e.g. ``bnlab.models.mlp(..., norm="bn")``.
        which: "all" (train everything), "bn_affine" (only the norm layers' γ and β,
            Frankle et al. 2021), "output" (only the output layer's weight and bias:
            a linear classifier on random features), "random" (``count`` scalar weights
            chosen uniformly at random among the weight matrices and biases that are not
            γ or β; default count = the number of γ and β entries), "all_but_beta"
            (everything except the norm layers' shifts β, which stay at their initial 0).
        count: how many scalars "random" trains.
        per_unit: how many incoming weights per hidden unit "random_per_unit" trains.
        seed: seeds the choice of the random subset (its own generator; the global RNG is untouched).
        output: the name of the output layer (``bnlab.models.mlp``: "out").

    Frozen tensors get ``requires_grad=False``. For "random", a gradient hook keeps
    the gradient of the unchosen entries at 0 and the mask is stored as ``p._train_mask``;
    with momentum 0 and weight decay 0 those entries stay bit-identical. (Weight decay
    would still shrink them: ``fit`` with ``weight_decay > 0`` moves them.)

    Raises:
        ValueError: unknown ``which``, a model without γ/β for "bn_affine"/"all_but_beta",
            no layer called ``output``, or ``count`` out of range.
    """
    if which not in CHOICES:
        raise ValueError(f"which must be one of {CHOICES}, got {which!r}")
    params = dict(model.named_parameters())
    for p in params.values():   # a second call replaces the first: drop an earlier mask and its hook
        _unmask_gradient(p)
    affine = bn_affine_names(model)
    if which in ("bn_affine", "all_but_beta") and not affine:
        raise ValueError(f"which={which!r} needs normalization layers with γ and β; this model has none "
                         "(use norm='bn' with affine=True)")
    if which == "all":
        keep = set(params)
    elif which == "bn_affine":
        keep = set(affine)
    elif which == "all_but_beta":
        keep = set(params) - {n for n in affine if n.endswith(".bias")}
    elif which == "output":
        keep = {n for n in params if n.split(".")[0] == output}
        if not keep:
            raise ValueError(f"no parameters under the output layer {output!r}; layers: "
                             f"{sorted({n.split('.')[0] for n in params})}")
    elif which == "random_per_unit":
        gen = torch.Generator().manual_seed(seed)
        keep = set()
        for name, p in params.items():
            if p.ndim < 2 or name in affine or name.split(".")[0] == output:
                continue
            rows = p.detach().reshape(p.shape[0], -1)
            if not 0 < per_unit <= rows.shape[1]:
                raise ValueError(f"per_unit must be between 1 and {rows.shape[1]} (the fan-in of {name}), "
                                 f"got {per_unit}")
            scores = torch.rand(rows.shape, generator=gen)
            picked = scores.argsort(dim=1)[:, :per_unit]
            mask = torch.zeros(rows.shape, dtype=torch.bool).scatter_(1, picked, True).view_as(p)
            keep.add(name)
            _mask_gradient(p, mask)
        if not keep:
            raise ValueError(f"which='random_per_unit' found no weight matrix outside the output layer {output!r}")
    else:  # random
        pool = [n for n in params if n not in affine]
        sizes = [params[n].numel() for n in pool]
        total = sum(sizes)
        n_pick = sum(params[n].numel() for n in affine) if count is None else int(count)
        if not 0 < n_pick <= total:
            raise ValueError(f"count must be between 1 and {total} (the non-γ/β parameters), got {n_pick}")
        gen = torch.Generator().manual_seed(seed)
        chosen = torch.zeros(total, dtype=torch.bool)
        chosen[torch.randperm(total, generator=gen)[:n_pick]] = True
        keep = set()
        start = 0
        for name, size in zip(pool, sizes):
            mask = chosen[start:start + size].view_as(params[name])
            start += size
            if mask.any():
                keep.add(name)
                _mask_gradient(params[name], mask)
    for name, p in params.items():
        p.requires_grad_(name in keep)
    return model


def _mask_gradient(p: nn.Parameter, mask: torch.Tensor) -> None:
    mask = mask.to(p.device)
    p._train_mask = mask  # type: ignore[attr-defined]
    p._train_mask_hook = p.register_hook(lambda g, m=mask: g.masked_fill(~m, 0.0))  # type: ignore[attr-defined]


def _unmask_gradient(p: nn.Parameter) -> None:
    handle = getattr(p, "_train_mask_hook", None)
    if handle is not None:
        handle.remove()
    for attr in ("_train_mask", "_train_mask_hook"):
        if hasattr(p, attr):
            delattr(p, attr)
