"""Weight norms, the effective learning rate η/‖W‖², angular updates and scale invariance.

For a weight matrix W that feeds a batch-normalization layer the loss is scale
invariant, L(cW) = L(W) for every c > 0 (Ioffe & Szegedy 2015, §3.3). Differentiating
at c = 1 gives ⟨∇L(W), W⟩ = 0 (the gradient is orthogonal to W), and differentiating
L(cW) = L(W) in W gives ∇L(cW) = ∇L(W) / c. An SGD step of size η therefore turns W
by an angle of about η‖∇L‖/‖W‖ = (η/‖W‖²)·‖∇L(W/‖W‖)‖: the *effective learning rate*
is η/‖W‖² (van Laarhoven 2017; Arora, Li & Lyu 2019). With weight decay λ the norm
settles where the growth from the gradient balances the decay, and the angle per step
settles near √(2ηλ) (Kosson et al. 2024, "rotational equilibrium").
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from bnlab.probes.core import _check_mode, _device_of, _modules_by_name, preserved_state

__all__ = ["weight_layers", "weight_norms", "effective_learning_rates", "angle", "grad_weight_cosine",
           "scale_response", "WeightProbe", "ParameterSnapshot"]


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the modules that hold a weight matrix or kernel (``weight.ndim >= 2``), in order.

    For ``bnlab.models.mlp``: ``["fc1", ..., "fc{L}", "out"]``.

    Raises:
        AttributeError: ``model`` not an ``nn.Module``.
    """
    return [name for name, m in model.named_modules()
            if name and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.ndim >= 2]


def _weights(model: nn.Module, layers: Sequence[str] | None) -> dict[str, torch.Tensor]:
    names = list(layers) if layers is not None else weight_layers(model)
    if not names:
        raise ValueError("the model has no layer with a weight matrix (weight.ndim >= 2)")
    modules = _modules_by_name(model, names)
    bad = [n for n, m in modules.items() if not isinstance(getattr(m, "weight", None), torch.Tensor)]
    if bad:
        raise ValueError(f"layers {bad} have no weight tensor; choose from {weight_layers(model)}")
    return {n: m.weight for n, m in modules.items()}


def weight_norms(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, float]:
    """Frobenius norm ‖W‖ of each layer's weight (float64).

    Args:
        model: the network. layers: module names (default: ``weight_layers(model)``).
    Returns: name → ‖W‖₂ (Frobenius), in the order of ``layers``.

    Raises:
        ValueError: the model has no layer with a weight matrix; a name in ``layers`` the model does not
            have (a string is read as its letters), or a module without a weight tensor.
        TypeError: ``model`` not an ``nn.Module`` (AttributeError when ``layers`` is None).
    """
    return {n: float(w.detach().double().norm()) for n, w in _weights(model, layers).items()}


def effective_learning_rates(model: nn.Module, lr: float, layers: Sequence[str] | None = None) -> dict[str, float]:
    """η/‖W‖² per layer: the step size that a scale-invariant layer's *direction* W/‖W‖ sees.

    Meaningful for layers followed by batch normalization (L(cW) = L(W)); for
    other layers it is just a number. Source: van Laarhoven 2017, §3; Arora, Li & Lyu 2019.

    Returns: name → lr / ‖W‖² (units: 1/‖W‖² times the learning rate).

    Raises:
        ValueError: ``lr`` not > 0; as ``weight_norms`` for ``model`` and ``layers``.
        TypeError: ``lr`` not a number; ``model`` not an ``nn.Module`` (AttributeError when ``layers``
            is None).
        ZeroDivisionError: a weight that is all zeros.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    return {n: lr / v ** 2 for n, v in weight_norms(model, layers).items()}


def angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle between two tensors seen as vectors, in radians, in [0, π] (float64).

    Computed as atan2(‖a × b‖, ⟨a, b⟩) through ‖a‖²‖b‖² − ⟨a, b⟩² so that tiny angles
    (1e-4 rad and below) are not lost to the round-off of arccos near 1.

    Raises:
        ValueError: ``a`` and ``b`` differ in shape, or either is all zeros.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    nx, ny = float(x.norm()), float(y.norm())
    if nx == 0 or ny == 0:
        raise ValueError("the angle with a zero tensor is undefined")
    x, y = x / nx, y / ny
    dot = float(x @ y)
    cross = float((x - dot * y).norm())  # the component of x orthogonal to y: sin of the angle
    return math.atan2(cross, dot)


def grad_weight_cosine(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                       layers: Sequence[str] | None = None, mode: str = "train") -> dict[str, float]:
    """cos(∇_W L, W) = ⟨∇_W L, W⟩ / (‖∇_W L‖ ‖W‖) per layer, on one batch.

    Zero (up to round-off) for a weight feeding BN in train mode: L(cW) = L(W) gives
    ⟨∇L, W⟩ = d/dc L(cW) at c = 1 = 0. Other layers (e.g. the output layer) need not be.
    The model is left bit-identical (``preserved_state``).

    Args:
        model: the network. x: (B, ...) inputs. y: (B,) targets.
        loss_fn: default cross-entropy. layers: default ``weight_layers(model)``.
        mode: "train" (BN uses the batch statistics: the scale-invariant case) or "eval".
    Returns: name → cosine in [−1, 1].

    Raises:
        ValueError: ``mode`` not "train"/"eval"; as ``weight_norms`` for ``layers``.
        TypeError: ``model`` not an ``nn.Module`` (AttributeError when ``layers`` is None).
        RuntimeError: the model cannot take ``x``; ``loss_fn`` does not return a scalar; a chosen weight
            that the loss does not use or that does not require a gradient (torch's errors).
    """
    _check_mode(mode)
    weights = _weights(model, layers)
    loss_fn = loss_fn or nn.functional.cross_entropy
    with preserved_state(model), torch.enable_grad():
        model.train(mode == "train")
        dev = _device_of(model)
        loss = loss_fn(model(x.to(dev)), y.to(dev))
        grads = torch.autograd.grad(loss, list(weights.values()))
    out = {}
    for (name, w), g in zip(weights.items(), grads):
        g64, w64 = g.detach().double().flatten(), w.detach().double().flatten()
        out[name] = float(g64 @ w64) / max(float(g64.norm()) * float(w64.norm()), 1e-300)
    return out


def scale_response(model: nn.Module, layer: str, c: float, x: torch.Tensor, y: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """What multiplying one layer's weight by ``c`` does to the output and to that weight's gradient.

    For W feeding BN (train mode), L(cW) = L(W) and ∇L(cW) = ∇L(W)/c, so expect
    ``output_change`` ≈ 0 (only BN's ε breaks it) and ``grad_ratio`` ≈ 1/c.
    The model is left bit-identical.

    Args:
        model: the network (measured in train mode). layer: e.g. "fc2". c: the factor (> 0).
        x: (B, ...) inputs. y: (B,) targets. loss_fn: default cross-entropy.
    Returns:
        {"output_change": ‖f_{cW}(x) − f_W(x)‖ / ‖f_W(x)‖ (logits),
         "grad_ratio": ‖∇_W L at cW‖ / ‖∇_W L at W‖,
         "loss_change": |L(cW) − L(W)|}.

    Raises:
        ValueError: ``c`` not > 0; ``layer`` not a module of the model, or one without a weight tensor.
        TypeError: ``c`` not a number; ``model`` not an ``nn.Module``.
        RuntimeError: the model cannot take ``x``; ``loss_fn`` does not return a scalar; the loss does
            not use the layer's weight, or it does not require a gradient (torch's errors).
    """
    if not c > 0:
        raise ValueError(f"c must be positive, got {c}")
    w = _weights(model, [layer])[layer]
    loss_fn = loss_fn or nn.functional.cross_entropy
    dev = _device_of(model)
    x, y = x.to(dev), y.to(dev)

    def measure() -> tuple[torch.Tensor, torch.Tensor, float]:
        with preserved_state(model), torch.enable_grad():
            model.train()
            out = model(x)
            loss = loss_fn(out, y)
            (g,) = torch.autograd.grad(loss, [w])
        return out.detach().double(), g.detach().double(), float(loss.detach())

    out0, g0, l0 = measure()
    with preserved_state(model):
        with torch.no_grad():
            w.mul_(c)
        out1, g1, l1 = measure()
    return {"output_change": float((out1 - out0).norm() / out0.norm()),
            "grad_ratio": float(g1.norm() / g0.norm()), "loss_change": abs(l1 - l0)}


class WeightProbe:
    """``fit`` probe: per layer ‖W‖, the effective learning rate η/‖W‖², and the angle W turned
    since the probe's previous call.

    With ``every=1`` the angle is the per-step angular update ∠(W_t, W_{t+1}), the
    quantity whose equilibrium value is about √(2ηλ) under SGD with weight decay λ
    (Kosson et al. 2024). The first call of a run (step 0, or a new model) has angle NaN.
    Reading weights does not change the model.

    Each call returns name → {"norm", "effective_lr", "angle"}; ``bnlab.probes.stack_records``
    turns a run's list into arrays of shape (K,) per layer and key.

    Args:
        every: run every this many steps (fit reads this attribute).
        layers: module names (default: ``weight_layers(model)``).

    Raises:
        ValueError: ``every`` < 1 (or a string that is not a number). A call raises as ``weight_norms``,
            and ZeroDivisionError for a weight that is all zeros.
        TypeError: ``every`` not a number (e.g. None).
    """

    def __init__(self, every: int = 1, layers: Sequence[str] | None = None) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive int, got {every}")
        self.every = int(every)
        self.layers = None if layers is None else list(layers)
        self._last: tuple[int, int, dict[str, torch.Tensor]] | None = None  # (id(model), step, W/‖W‖)

    def __call__(self, ctx: Any) -> dict[str, dict[str, float]]:
        weights = _weights(ctx.model, self.layers)
        last = self._last
        fresh = last is None or last[0] != id(ctx.model) or ctx.step <= last[1]
        out, units = {}, {}
        for name, w in weights.items():
            w64 = w.detach().double().flatten()  # one float64 copy per layer and call (as ``angle`` computes)
            norm = float(w64.norm())
            units[name] = w64 / norm
            if fresh:
                turn = float("nan")
            else:
                x, y = last[2][name], units[name]  # type: ignore[index]
                dot = float(x @ y)
                turn = math.atan2(float((x - dot * y).norm()), dot)
            out[name] = {"norm": norm, "effective_lr": ctx.lr / norm ** 2, "angle": turn}
        self._last = (id(ctx.model), ctx.step, units)
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_last"] = None  # a copy sent to another process starts fresh
        return state


class ParameterSnapshot:
    """``fit`` probe: a copy of chosen parameters (e.g. BN's γ and β, or the biases), as NumPy arrays.

    With ``every`` equal to the number of steps it records the start and the end of a run
    (``fit`` always probes once at the end), which is what a histogram of learned γ or the
    total movement of a bias needs.

    Args:
        every: run every this many steps.
        names: parameter names (``model.named_parameters()``), or prefixes ending in "."
            (``"norm1."``); default every parameter.
    Returns per call: name → float64 array with the parameter's shape.

    Raises:
        ValueError: ``every`` < 1 (or a string that is not a number); at a call, no parameter matches
            ``names``.
        TypeError: ``every`` not a number (e.g. None).
    """

    def __init__(self, every: int, names: Sequence[str] | None = None) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be a positive int, got {every}")
        self.every, self.names = int(every), None if names is None else list(names)

    def __call__(self, ctx: Any) -> dict[str, Any]:
        params = dict(ctx.model.named_parameters())
        if self.names is None:
            chosen = list(params)
        else:
            chosen = [n for n in params if any(n == k or (k.endswith(".") and n.startswith(k)) for k in self.names)]
            if not chosen:
                raise ValueError(f"no parameter matches {self.names}; parameters: {list(params)}")
        return {n: params[n].detach().cpu().double().numpy().copy() for n in chosen}
