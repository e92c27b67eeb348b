"""Model builders: the course's MLPs (and, later, the deep linear network)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from bnlab import arguments as A
from bnlab.layers import BatchNorm, LpNorm, make_norm

__all__ = ["mlp", "remove_bias", "ACTIVATIONS", "INITS", "lsuv", "deep_linear", "dln_data", "dln_loss"]

# Layer kinds that do not subtract a mean, so a bias before them is not redundant.
KEEPS_BIAS = frozenset({"noise"})

ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}

# Named weight initialisations for ``mlp(init=...)``; every bias starts at 0.
INITS = {
    # He et al. (2015), "Delving Deep into Rectifiers", §2.2: W ~ N(0, 2/fan_in), for ReLU nets.
    "he": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
    # Glorot & Bengio (2010), eq. 16, normal form: W ~ N(0, 2/(fan_in + fan_out)).
    "xavier": lambda w: nn.init.xavier_normal_(w, gain=1.0),
}


def mlp(widths: Sequence[int] = (100, 100, 100), activation: str = "sigmoid", norm: str | None = None,
        placement: str = "before", init_std: float | None = None, in_features: int = 784,
        num_classes: int = 10, norm_kwargs: dict | None = None, init: str | None = None,
        dropout: float = 0.0, dropout_layers: Sequence[int] | None = None,
        bias: bool | None = None) -> nn.Sequential:
    """A fully connected classifier, optionally with a normalization layer per hidden layer.

    Layers are named so probes can find them: ``flatten``, then for hidden layer
    k = 1..L: ``fc{k}``, ``norm{k}`` and ``act{k}`` (order set by ``placement``),
    ``drop{k}`` if that layer has dropout, then ``out``.

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
        init: a named initialisation instead of ``init_std``: "he" (Kaiming: weights
            ~ N(0, 2/fan_in), He et al. 2015 §2.2, for ReLU) or "xavier" (Glorot: weights
            ~ N(0, 2/(fan_in + fan_out)), Glorot & Bengio 2010 eq. 16); every bias = 0.
            For a data-dependent start see ``lsuv``.
        dropout: drop probability q of ``nn.Dropout`` (inverted dropout: kept units are scaled
            by 1/(1−q) in training, identity in eval mode; Srivastava et al. 2014) at the end of
            each hidden layer (after its activation and norm), i.e. on the input of the next
            Linear. 0 adds no layer.
        dropout_layers: which hidden layers (1..L) get dropout; default all. ``[L]`` puts it
            only after the last hidden layer, where no BN follows (Li et al. 2019, §5).

    A Linear layer directly followed by a norm layer has no bias (the norm's
    centring would cancel it; its shift β takes the role). The "noise" kind (noise
    injection without normalization, a control) centres nothing, so its Linear keeps the bias.

    Shapes: input (N, in_features) or (N, 1, 28, 28); output (N, num_classes).

    Raises:
        ValueError: an unknown ``activation``, ``init`` or ``norm`` kind; ``placement`` not "before"/"after";
            ``widths`` not a non-empty sequence of positive ints; ``in_features`` or ``num_classes`` < 1;
            ``init_std`` <= 0, or given together with ``init``; ``bias`` not None/True/False;
            ``dropout`` outside [0, 1); ``dropout_layers`` outside 1..L; a bad setting in ``norm_kwargs``.
        TypeError: ``in_features``/``num_classes`` not ints; ``norm_kwargs`` not a dict, or holding a
            keyword the norm layer does not take.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
    if placement not in ("before", "after"):
        raise ValueError(f"placement must be 'before' or 'after' the activation, got {placement!r}")
    if isinstance(widths, (int, str)) or not isinstance(widths, Sequence) or len(widths) == 0 or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, one per hidden layer, e.g. "
                         f"(100, 100, 100) or (100,) for one layer; got {widths!r}.")
    A.integer("in_features", in_features, minimum=1, hint="784 for 28×28 images (data.in_features).")
    A.integer("num_classes", num_classes, minimum=1, hint="10 for Fashion-MNIST.")
    if norm_kwargs is not None and not isinstance(norm_kwargs, dict):
        raise TypeError(f"norm_kwargs must be a dict of keyword arguments for the norm layers, e.g. "
                        f"{{'momentum': 0.01}}; got {type(norm_kwargs).__name__}.")
    if init_std is not None and not init_std > 0:
        raise ValueError(f"init_std must be positive (or None for PyTorch's default), got {init_std}")
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}: choose one of {sorted(INITS)} or None (then init_std applies)")
    if init is not None and init_std is not None:
        raise ValueError(f"give either init={init!r} or init_std={init_std}, not both")
    if bias not in (None, True, False):
        raise ValueError(f"bias must be None (automatic), True or False, got {bias!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a drop probability in [0, 1), got {dropout}")
    dropped = set(range(1, len(widths) + 1)) if dropout_layers is None else {int(k) for k in dropout_layers}
    if not dropped <= set(range(1, len(widths) + 1)):
        raise ValueError(f"dropout_layers must name hidden layers 1..{len(widths)}, got {sorted(dropped)}")
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
        if dropout > 0 and k in dropped:
            layers[f"drop{k}"] = nn.Dropout(dropout)
        fan_in = width
    layers["out"] = nn.Linear(fan_in, num_classes)
    model = nn.Sequential(layers)
    if init_std is not None:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=init_std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    if init is not None:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                INITS[init](module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


# Layers whose presence means the model already normalizes (LSUV is the control *without* them):
# bnlab's and torch's (BatchNorm, NoisyBatchNorm, LpNorm, LayerNorm, GroupNorm, BatchNorm1d, ...).
_NORM_LAYERS = (BatchNorm, LpNorm, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _is_norm_layer(module: nn.Module) -> bool:
    return isinstance(module, _NORM_LAYERS) or type(module).__name__.endswith(("Norm", "Norm1d", "Norm2d", "Norm3d"))


def _hidden_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """Every ``nn.Linear`` of ``model`` in forward-registration order except the last (the output)."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[:-1]


@torch.no_grad()
def _preactivation_stats(model: nn.Module, layer: nn.Linear, x: torch.Tensor, per_unit: bool,
                         center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``lsuv`` removes from ``layer``'s output on ``x``: a shift and a scale per unit, (units,) each.

    The shift is the unit's batch mean (0 if not ``center``); the scale its population std,
    or with ``per_unit=False`` one layer-wide value: the std of all the layer's outputs
    after the shift is removed.
    """
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _inp, out: captured.append(out.detach()))
    try:
        model(x)
    except RuntimeError as err:
        raise ValueError(f"the model cannot take x of shape {tuple(x.shape)}: {err}. Pass a batch of the "
                         "training inputs the model was built for (e.g. mlp(in_features=...)).") from err
    finally:
        handle.remove()
    z = captured[0].reshape(-1, captured[0].shape[-1]).double()
    mean = z.mean(dim=0) if center else torch.zeros_like(z[0])
    if per_unit:
        return mean, z.std(dim=0, unbiased=False)
    return mean, torch.full_like(mean, float((z - mean).pow(2).mean().sqrt()))


def lsuv(model: nn.Module, x: torch.Tensor, tol: float = 1e-3, max_iter: int = 10, per_unit: bool = True,
         center: bool = True) -> nn.Module:
    """Data-dependent initialisation: standardise every hidden pre-activation once on a batch (in place).

    Layer-sequential unit-variance (LSUV) initialisation, Mishkin & Matas (2016), "All you
    need is a good init", Algorithm 1: going from the input up, rescale each layer's
    weights until its output has unit variance on the batch ``x``. Here, for every hidden
    ``nn.Linear`` (all but the last Linear, the output layer) with pre-activation z = W h + b
    measured on ``x``:

    * ``per_unit=True`` (default): unit j gets W_j ← W_j / s_j and b_j ← (b_j − μ_j) / s_j,
      with μ_j, s_j the batch mean and (population) standard deviation of z_j, so every unit
      has mean 0 and std 1 on ``x``: the forward pass of BN (γ = 1, β = 0) at initialisation,
      folded into the weights once and then left to training. This per-unit form is the
      data-dependent init of Krähenbühl et al. (2016) and of weight normalization's
      initialisation (Salimans & Kingma 2016, §3).
    * ``per_unit=False``: Mishkin & Matas's layer-wide form, one scale per layer (the std of
      all the layer's pre-activations together), centring per unit via the bias if ``center``.

    Nothing is added to the model: afterwards it is a plain network with rescaled weights and
    biases (no normalization layer), trained like any other. Layers are processed from the
    input up, each measured after the ones below it were rescaled; a layer is re-measured and
    rescaled until |mean| < ``tol`` and |std − 1| < ``tol`` (one pass suffices for a Linear
    layer, up to rounding), at most ``max_iter`` times.

    Args:
        model: a network without normalization layers, e.g. ``mlp(norm=None, init_std=0.1)``.
        x: a batch of training inputs (B, ...) the model accepts, B >= 2 (the course uses the
            first 1,000 training images, ``data.x_train[:1000]``).
        tol: tolerance on each unit's (or the layer's) mean and std after rescaling.
        max_iter: most measure-and-rescale passes per layer.
        per_unit: standardise each unit (True) or use one layer-wide scale (False).
        center: also subtract the mean through the bias (needs layers with a bias).

    Returns:
        ``model`` itself (modified in place), in the train/eval mode it had.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``x`` not a floating tensor.
        ValueError: bad ``tol``/``max_iter``, a batch of fewer than 2 inputs, a model with a
            normalization layer or without a hidden Linear layer, a bias-free layer with
            ``center=True``, or a unit that is constant on the batch (its std is 0).
        RuntimeError: a layer did not reach the tolerance within ``max_iter`` passes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor batch of training inputs, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"x must be a batch of at least 2 inputs (B, ...), got shape {tuple(x.shape)}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    norms = [name for name, m in model.named_modules() if _is_norm_layer(m)]
    if norms:
        raise ValueError(f"lsuv is the well-scaled start for a network without normalization, but the model "
                         f"has normalization layers {norms}: build it with norm=None")
    layers = _hidden_linears(model)
    if not layers:
        raise ValueError("the model has no hidden nn.Linear layer to rescale (all but the last Linear are hidden)")
    if center:
        no_bias = [name for name, m in layers if m.bias is None]
        if no_bias:
            raise ValueError(f"layers {no_bias} have no bias, so their mean cannot be removed: "
                             f"build them with a bias or pass center=False")
    was_training = model.training
    model.eval()
    try:
        for name, layer in layers:
            for attempt in range(max_iter + 1):
                mean, std = _preactivation_stats(model, layer, x, per_unit, center)
                if not torch.isfinite(std).all() or float(std.min()) <= 1e-12:
                    dead = torch.nonzero(~(std > 1e-12)).flatten().tolist()
                    raise ValueError(f"units {dead[:10]} of layer {name!r} are constant on the batch x (std 0), "
                                     f"so they cannot be standardised: use a larger or more varied batch, "
                                     f"or a different initialisation")
                worst_mean, worst_std = float(mean.abs().max()), float((std - 1).abs().max())
                if worst_mean < tol and worst_std < tol:
                    break
                if attempt == max_iter:
                    raise RuntimeError(f"layer {name!r} did not reach mean 0, std 1 within tol={tol} in "
                                       f"max_iter={max_iter} passes (max |mean| {worst_mean:.2e}, "
                                       f"max |std - 1| {worst_std:.2e}): raise max_iter or tol")
                w = layer.weight
                w.data.copy_((w.double() / std[:, None]).to(w.dtype))
                if layer.bias is not None:
                    layer.bias.data.copy_(((layer.bias.double() - mean) / std).to(layer.bias.dtype))
    finally:
        model.train(was_training)
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

    Raises:
        TypeError: ``depth`` or ``width`` is not an int; ``norm_kwargs`` holds a keyword the norm layer
            does not take.
        ValueError: ``depth`` or ``width`` < 1, ``init_std`` <= 0, an unknown ``norm`` kind (with ``bn``),
            or a bad setting in ``norm_kwargs``.
    """
    A.integer("depth", depth, minimum=1, hint="The paper's deep linear network has depth=25.")
    A.integer("width", width, minimum=1, hint="The paper's deep linear network has width=10.")
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

    Raises:
        ValueError: ``n`` < 2 or ``dim`` < 1.
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

    Raises:
        ValueError: ``pred`` and ``target`` differ in shape.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return (pred - target).pow(2).sum(dim=1).mean()
