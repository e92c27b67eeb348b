"""Model builders: the course's MLPs (and, later, the deep linear network)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from bnlab.layers import make_norm

__all__ = ["mlp", "remove_bias", "ACTIVATIONS", "deep_linear", "dln_data", "dln_loss"]

# Layer kinds that do not subtract a mean, so a bias before them is not redundant.
KEEPS_BIAS = frozenset({"noise"})

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}


def mlp(widths: Sequence[int] = (100, 100, 100), activation: str = "sigmoid", norm: str | None = None,
        placement: str = "before", init_std: float | None = None, in_features: int = 784,
        num_classes: int = 10, norm_kwargs: dict | None = None, bias: bool | None = None) -> nn.Sequential:
    """A fully connected classifier, optionally with a normalization layer per hidden layer.

    Layers are named so probes can find them: ``flatten``, then for hidden layer
    k = 1..L: ``fc{k}``, ``norm{k}`` and ``act{k}`` (order set by ``placement``), then ``out``.

    Args:
        widths: hidden layer widths, e.g. (100, 100, 100) for the paper's 784-100-100-100-10.
        activation: "sigmoid", "relu", "tanh", "gelu" or "linear".
        norm: a kind from ``bnlab.layers.norm_kinds()`` ("bn", "ln", ...) or None.
        placement: "before" the activation (Linear → norm → act, the paper's choice)
            or "after" it (Linear → act → norm).
        init_std: if given, every weight ~ N(0, init_std²) and every bias = 0;
            None keeps PyTorch's default (uniform, Kaiming-style) initialisation.
        in_features: inputs per example (images are flattened; 784 for 28×28).
        num_classes: outputs (logits).
        norm_kwargs: extra keyword arguments for each norm layer (e.g. ``{"momentum": 0.01}``,
            or ``{"affine": False}`` for BN without γ and β).
        bias: whether the hidden Linear layers have a bias. None (default) applies the rule
            below; True keeps it even before a norm layer (to show that it is redundant:
            the norm's centring cancels it, Ioffe & Szegedy 2015, §3.2); False drops it everywhere.
            The output layer always has a bias.

    A Linear layer directly followed by a norm layer has no bias (the norm's
    centring would cancel it; its shift β takes the role). The "noise" kind (noise
    injection without normalization, a control) centres nothing, so its Linear keeps the bias.

    Shapes: input (N, in_features) or (N, 1, 28, 28); output (N, num_classes).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
    if placement not in ("before", "after"):
        raise ValueError(f"placement must be 'before' or 'after' the activation, got {placement!r}")
    if len(widths) == 0 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {tuple(widths)}")
    if init_std is not None and not init_std > 0:
        raise ValueError(f"init_std must be positive (or None for PyTorch's default), got {init_std}")
    if bias not in (None, True, False):
        raise ValueError(f"bias must be None (automatic), True or False, got {bias!r}")
    norm_kwargs = norm_kwargs or {}

    layers: "OrderedDict[str, nn.Module]" = OrderedDict(flatten=nn.Flatten())
    fan_in = in_features
    for k, width in enumerate(widths, start=1):
        auto = norm is None or norm in KEEPS_BIAS or placement == "after"
        layers[f"fc{k}"] = nn.Linear(fan_in, width, bias=auto if bias is None else bias)
        if norm is not None and placement == "before":
            layers[f"norm{k}"] = make_norm(norm, width, **norm_kwargs)
        layers[f"act{k}"] = ACTIVATIONS[activation]()
        if norm is not None and placement == "after":
            layers[f"norm{k}"] = make_norm(norm, width, **norm_kwargs)
        fan_in = width
    layers["out"] = nn.Linear(fan_in, num_classes)
    model = nn.Sequential(layers)
    if init_std is not None:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


def remove_bias(model: nn.Module, layers: Sequence[str] | None = None) -> nn.Module:
    """Remove the bias of Linear layers in place (the weights stay as they are); returns ``model``.

    ``remove_bias(mlp(..., norm="bn", bias=True))`` is the biased net's exact twin
    without the redundant bias before BN: same weights, same seed, one difference.

    Args:
        layers: module names, default every hidden layer ``fc1``..``fc{L}`` (not ``out``).
    Raises: ValueError for a name that is not a Linear layer of the model.
    """
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [n for n in modules if n.startswith("fc")]
    bad = [n for n in names if not isinstance(modules.get(n), nn.Linear)]
    if bad:
        raise ValueError(f"{bad} are not Linear layers of the model; Linear layers: "
                         f"{[n for n, m in modules.items() if isinstance(m, nn.Linear)]}")
    for n in names:
        modules[n].register_parameter("bias", None)
    return model


# --------------------------------------------------------------------------- deep linear network

def deep_linear(depth: int = 25, width: int = 10, bn: bool = False, init_std: float | None = None,
                norm: str = "bn", norm_kwargs: dict | None = None) -> nn.Sequential:
    """The deep linear network of Santurkar et al. (2018): ``depth`` bias-free width×width layers.

    Layers are named ``fc1``..``fc{depth}``; with ``bn`` a normalization layer
    ``norm{k}`` (affine, batch statistics in training) follows *every* Linear,
    the last one included. There is no nonlinearity: without BN the network is
    the matrix product W_depth ⋯ W_1.

    Args:
        depth: number of Linear layers (paper: 25).
        width: inputs = outputs = hidden width (paper: 10).
        bn: put a normalization layer after every Linear.
        init_std: weights ~ N(0, init_std²); default 1/√width (variance 1/width = 1/10),
            which keeps E‖W x‖² = ‖x‖² layer after layer.
        norm: the kind of normalization layer when ``bn`` (default "bn", see ``bnlab.layers``).
        norm_kwargs: extra keyword arguments for each normalization layer.

    Shapes: input (N, width), output (N, width).
    """
    if int(depth) < 1 or int(width) < 1:
        raise ValueError(f"depth and width must be positive ints, got depth={depth}, width={width}")
    std = width ** -0.5 if init_std is None else init_std
    if not std > 0:
        raise ValueError(f"init_std must be positive (or None for 1/sqrt(width)), got {init_std}")
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for k in range(1, depth + 1):
        fc = nn.Linear(width, width, bias=False)
        nn.init.normal_(fc.weight, mean=0.0, std=std)
        layers[f"fc{k}"] = fc
        if bn:
            layers[f"norm{k}"] = make_norm(norm, width, **(norm_kwargs or {}))
    return nn.Sequential(layers)


def dln_data(n: int = 1000, dim: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The deep linear network's regression task: x ~ N(0, I), targets A x with a fixed Gaussian A.

    A has i.i.d. N(0, 1) entries; x and A come from their own generator seeded
    with ``seed`` (independent of the training seed, so every run fits the same task).

    Returns:
        x (n, dim), y = x Aᵀ (n, dim), A (dim, dim); float32.
    """
    if int(n) < 2 or int(dim) < 1:
        raise ValueError(f"need n >= 2 samples and dim >= 1, got n={n}, dim={dim}")
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=gen)
    x = torch.randn(n, dim, generator=gen)
    return x, x @ a.T, a


def dln_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the squared error ‖pred_i − target_i‖² (summed over outputs).

    Shapes: pred (N, D), target (N, D); returns a scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return (pred - target).pow(2).sum(dim=1).mean()
