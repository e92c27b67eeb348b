"""Model builders: the course's MLPs (and, later, the deep linear network)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import nn

from bnlab.layers import make_norm

__all__ = ["mlp", "ACTIVATIONS"]

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}


def mlp(widths: Sequence[int] = (100, 100, 100), activation: str = "sigmoid", norm: str | None = None,
        placement: str = "before", init_std: float | None = None, in_features: int = 784,
        num_classes: int = 10, norm_kwargs: dict | None = None) -> nn.Sequential:
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
        norm_kwargs: extra keyword arguments for each norm layer (e.g. ``{"momentum": 0.01}``).

    A Linear layer directly followed by a norm layer has no bias (the norm's
    centring would cancel it; its shift β takes the role).

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
    norm_kwargs = norm_kwargs or {}

    layers: "OrderedDict[str, nn.Module]" = OrderedDict(flatten=nn.Flatten())
    fan_in = in_features
    for k, width in enumerate(widths, start=1):
        bias = norm is None or placement == "after"
        layers[f"fc{k}"] = nn.Linear(fan_in, width, bias=bias)
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
