"""Layer Jacobians at a point of the data, and their singular values.

Ioffe & Szegedy (2015, §3.3) conjecture that batch normalization "may lead the layer
Jacobians to have singular values close to 1, which is known to be beneficial for
training". This module measures those singular values.

What is differentiated. A network ``nn.Sequential`` is cut into **blocks** after every
nonlinearity (``bnlab.probes.ACTIVATION_TYPES``): for ``bnlab.models.mlp`` block k is
``fc{k} → [norm{k}] → act{k}`` and the last block is ``out``. With h_0 the flattened
input and h_k the output of block k, the **layer Jacobian** of block k is
J_k = ∂h_k/∂h_{k−1}, evaluated at the representations of a batch x, and the
**input-to-output Jacobian** is ∂h_{L+1}/∂h_0 = J_{L+1} ⋯ J_1 (logits w.r.t. pixels).

BN in training mode couples the examples of a batch: h_k[i] depends on every
h_{k−1}[j] through the batch mean and variance. Two Jacobians are therefore defined:

* ``statistics="frozen"`` (per example): the batch's mean and variance at every BN layer
  are computed once from x and then held fixed, so BN is the affine map
  (z − μ_B)/√(σ²_B + ε)·γ + β and each example has its own (d_k × d_{k−1}) Jacobian.
  This is the Jacobian of the function the network computes at this point (the
  eval-mode network with population statistics equal to this batch's), and the one
  that multiplies a perturbation of a single example in a large batch.
* ``statistics="batch"`` (the full batch Jacobian): ∂ vec(H_k)/∂ vec(H_{k−1}) with
  H the (B, d) matrix of a batch, (B·d_k × B·d_{k−1}), differentiating through the
  batch statistics as training does. It is the frozen Jacobian (block-diagonal over
  examples) plus the coupling terms; for a BN layer alone the coupling projects out,
  per unit, the batch's constant direction 1 and its normalized direction x̂
  (Ioffe & Szegedy 2015, §3, the backward equations), so two of every unit's B
  singular values γ/σ become 0. This is the backward map gradients actually pass
  through in training (Yang et al. 2019 analyse it).

The frozen Jacobian needs a fixed function that computes, example by example, what the
training-mode network computes on x. It exists for batch norm (``bnlab.layers.BatchNorm``,
``nn.BatchNorm1d/2d/3d``) and for the layers whose training-mode statistics are the same
kind of batch statistics: "bn_detached", "bn_mean", "bn_scale", "drift_bn" (its drift is
a constant offset), "ghost_bn" when x is one ghost batch, the ℓp norms "l1", "l2", "linf"
(batch mean and ℓp scale), and layers without batch statistics ("ln", "gn"). It does not
exist for "noisy_bn" and "noise" (fresh random noise at every training step), "ghost_bn"
with several ghost batches in x (statistics per ghost batch), "bn_reestimated" and
"bn_frozen" (training normalizes with stored statistics, not the batch's), nor for a
batch-norm layer of another class: the frozen functions raise ``ValueError`` for those,
naming the layer; the batch Jacobian takes any of them.

Every function leaves the model bit-identical (it works on a copy or inside
``preserved_state``) and the random states of torch, NumPy and Python's ``random`` as
they were, even when a layer draws random numbers in training mode (so calling a probe
during training does not change the run it measures).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from bnlab.layers import (BatchNorm, DetachedBatchNorm, DriftingBatchNorm, FrozenBatchNorm, GhostBatchNorm, LpNorm,
                          MeanOnlyBatchNorm, NoiseInjection, NoisyBatchNorm, ReestimatedBatchNorm, ScaleOnlyBatchNorm)
from bnlab.probes.activations import ACTIVATION_TYPES
from bnlab.probes.core import _check_model, _check_tensor, _device_of, preserved_state
from bnlab.runtime import preserved_rng

__all__ = ["STATISTICS", "blocks", "frozen_statistics", "layer_jacobians", "input_output_jacobian",
           "batch_jacobians", "JacobianSpectra", "jacobian_spectra"]

STATISTICS = ("frozen", "batch")

# Layers whose training-mode output normalizes with the batch's mean and biased variance
# (over every dimension but the channel one, or the parts of them the layer uses) and whose
# eval mode is the same map with running_mean/running_var in their place: the eval-mode copy
# with those set to the batch's computes the training-mode output. Exact classes only: a
# subclass may change either mode. DriftingBatchNorm adds rate·t·direction in both modes, t
# advanced by the training-mode pass as a training step would advance it.
_BATCH_STATISTICS: tuple[type[nn.Module], ...] = (BatchNorm, DetachedBatchNorm, MeanOnlyBatchNorm,
                                                  ScaleOnlyBatchNorm, DriftingBatchNorm,
                                                  nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

_UNDEFINED = ("the per-example Jacobian with frozen batch statistics (frozen_statistics, layer_jacobians, "
              "input_output_jacobian, jacobian_spectra with statistics='frozen') is not defined for layer")
_NOISE = ("in training mode it multiplies and shifts its output by fresh random noise at every call (Santurkar et "
          "al. 2018, Algorithm 1), so the training-mode network is random and no copy with frozen statistics "
          "computes it")
_STORED = ("in training mode it normalizes with its stored statistics (running_mean/running_var, {when}), not "
           "with the batch's, so a copy using the batch's statistics would compute another function")
_ONE_DRAW = "use batch_jacobians or jacobian_spectra(..., statistics='batch') for one draw of the noise"
_INSTEAD_BATCH = ("use batch_jacobians or jacobian_spectra(..., statistics='batch') (training mode, through the "
                  "statistics the layer really uses)")


def _is_batchnorm(m: nn.Module) -> bool:
    """A layer that normalizes with batch statistics in training (bnlab's BatchNorm and its subclasses, torch's)."""
    return isinstance(m, (BatchNorm, nn.modules.batchnorm._BatchNorm))


def _statistics_layers(model: nn.Module, batch: int) -> list[nn.Module]:
    """The layers whose batch statistics ``frozen_statistics`` holds fixed, for a batch of ``batch`` examples.

    Raises:
        ValueError: a layer for which the copy cannot compute the training-mode output (see
            ``frozen_statistics``), named with its module name and class.
    """
    out = []
    for name, m in model.named_modules():
        cls = type(m)
        label = f"{_UNDEFINED} {name or '(the model itself)'!r} ({cls.__name__}): "
        if cls in _BATCH_STATISTICS or cls is LpNorm:
            out.append(m)
        elif cls is GhostBatchNorm:
            v = m.virtual_batch_size
            if batch != v:
                raise ValueError(label + f"in training mode it normalizes every ghost batch of virtual_batch_size={v} "
                                 f"examples by that ghost batch's own statistics, so the {batch} examples of x do not "
                                 f"share one mean and variance. Pass a batch of exactly {v} examples (one ghost batch: "
                                 f"plain batch norm), or {_INSTEAD_BATCH}.")
            out.append(m)
        elif cls is NoisyBatchNorm:
            raise ValueError(label + f"{_NOISE}. Probe the same weights without the noise (a norm='bn' network loads "
                             f"its state_dict), or {_ONE_DRAW}.")
        elif cls is NoiseInjection:
            raise ValueError(label + f"{_NOISE}. Probe the same weights without the noise (nn.Identity in its place, "
                             f"or a norm=None network), or {_ONE_DRAW}.")
        elif cls in (ReestimatedBatchNorm, FrozenBatchNorm):
            when = "fixed at the first training batch" if cls is FrozenBatchNorm else "re-estimated every few steps"
            raise ValueError(label + _STORED.format(when=when) + f". Instead {_INSTEAD_BATCH}, or probe a norm='bn' "
                             f"network.")
        elif _is_batchnorm(m) or isinstance(m, (LpNorm, NoiseInjection)):
            raise ValueError(label + "its class is not one whose training-mode statistics are known to be the batch's "
                             "mean and variance (frozen_statistics knows BatchNorm, DetachedBatchNorm, "
                             "MeanOnlyBatchNorm, ScaleOnlyBatchNorm, DriftingBatchNorm, GhostBatchNorm on one ghost "
                             f"batch, LpNorm and nn.BatchNorm1d/2d/3d), so it will not guess. Instead {_INSTEAD_BATCH}.")
    return out


def _check_statistics(statistics: str) -> None:
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be 'frozen' (per-example Jacobian, batch mean and variance held fixed) "
                         f"or 'batch' (full batch Jacobian through the batch statistics), got {statistics!r}")


def blocks(model: nn.Module) -> list[tuple[str, nn.Sequential]]:
    """Cut a ``nn.Sequential`` after every nonlinearity: [(name, block), ...] from input to output.

    A block is named by its modules, e.g. ``"fc2→norm2→act2"``; modules before the first
    weight layer that have no parameters (``flatten``) join the first block, and whatever
    follows the last nonlinearity (the output layer) is the last block.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential``.
        ValueError: it has no nonlinearity to cut at.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"blocks needs an nn.Sequential (e.g. bnlab.models.mlp), got {type(model).__name__}")
    out: list[tuple[str, nn.Sequential]] = []
    current: list[tuple[str, nn.Module]] = []
    for name, m in model.named_children():
        current.append((name, m))
        if isinstance(m, ACTIVATION_TYPES):
            out.append(current)  # type: ignore[arg-type]
            current = []
    if not out:
        raise ValueError("the model has no nonlinearity (Sigmoid, Tanh, ReLU, GELU, Identity) to cut it into layers")
    if current:
        out.append(current)  # type: ignore[arg-type]
    named = []
    for mods in out:  # type: ignore[assignment]
        label = "→".join(n for n, m in mods if not isinstance(m, nn.Flatten))
        named.append((label, nn.Sequential(*[m for _, m in mods])))
    return named


@torch.no_grad()
def frozen_statistics(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode whose normalization layers use the batch statistics of ``x``.

    The copy is run once in training mode on ``x``; every batch-norm layer's running mean and
    running variance are then replaced by the mean and the biased variance of its input on
    that batch (what training-mode BN divides by; an ℓp norm's running mean and scale by its
    batch mean and ℓp scale), and the copy is switched to eval mode. It computes, example by
    example, exactly the training-mode output on ``x``, with the statistics held fixed. Other
    layers that differ between the modes (dropout) are in eval mode in that pass too, so for
    a network with dropout the copy is the training-mode network with dropout off. Which
    layers this holds for is listed in the module docstring; the others raise.

    Neither the model nor the random states (torch, NumPy, ``random``) are changed.

    Shapes: x (B, ...) with B >= 2.

    Raises:
        TypeError: ``model`` not an ``nn.Module``; ``x`` not a floating-point tensor.
        RuntimeError: the model cannot take ``x`` (torch's error).
        ValueError: B < 2; or a layer for which no eval-mode copy computes the training-mode
            output: a noisy layer ("noisy_bn", "noise": random in training), ``GhostBatchNorm``
            with B not its ``virtual_batch_size`` (statistics per ghost batch),
            ``ReestimatedBatchNorm``/``FrozenBatchNorm`` (training uses stored statistics),
            or a batch-norm class it does not know. The message names the layer (module
            name and class); ``batch_jacobians`` takes all of them.
    """
    _check_model(model)
    _check_tensor(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"batch statistics need a batch of at least 2 examples, got x of shape {tuple(x.shape)}")
    _statistics_layers(model, x.shape[0])  # refuse before copying
    frozen = copy.deepcopy(model)
    layers = _statistics_layers(frozen, x.shape[0])
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        z = inputs[0]
        if isinstance(m, LpNorm):
            stats[id(m)] = m.batch_statistics(z.to(m.running_mean.dtype))
            return
        dims = [d for d in range(z.dim()) if d != 1]
        var, mean = torch.var_mean(z, dim=dims, correction=0)
        stats[id(m)] = (mean, var)

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    try:
        frozen.eval()
        for m in layers:
            m.train()
        with preserved_rng():
            frozen(x.to(_device_of(frozen)))
    finally:
        for h in handles:
            h.remove()
    for m in layers:
        if id(m) not in stats:
            continue  # a layer the forward pass does not reach
        centre, spread = stats[id(m)]
        _set_buffer(m, "running_mean", centre)
        _set_buffer(m, "running_scale" if isinstance(m, LpNorm) else "running_var", spread)
    return frozen.eval()


def _set_buffer(m: nn.Module, name: str, value: torch.Tensor) -> None:
    """Copy ``value`` into buffer ``name``; install it if the layer keeps none (track_running_stats=False)."""
    buf = getattr(m, name)
    if buf is None:
        setattr(m, name, value.detach().clone())
    else:
        buf.copy_(value)


def _per_example(block: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(h: torch.Tensor) -> torch.Tensor:
        return block(h.unsqueeze(0)).squeeze(0)
    return torch.func.vmap(torch.func.jacrev(f))


def _check_examples(examples: int | None, x: torch.Tensor) -> int:
    if examples is None:
        return x.shape[0]
    if isinstance(examples, bool) or not isinstance(examples, int) or not 1 <= examples <= x.shape[0]:
        raise ValueError(f"examples must be an int from 1 to the batch size {x.shape[0]}, got {examples!r}")
    return examples


def _wanted(only: Sequence[int] | None, n: int) -> set[int]:
    if only is None:
        return set(range(n))
    wanted = {int(k) for k in only}
    bad = sorted(k for k in wanted if not 0 <= k < n)
    if bad:
        raise ValueError(f"only={list(only)} names blocks {bad}, but the model has blocks 0..{n - 1}")
    return wanted


def _representations(net: nn.Module, parts: Sequence[tuple[str, nn.Module]], x: torch.Tensor) -> list[torch.Tensor]:
    hs = [x.flatten(1) if isinstance(parts[0][1][0], nn.Flatten) else x]
    h = x
    for _, block in parts:
        h = block(h)
        hs.append(h)
    return hs


def layer_jacobians(model: nn.Module, x: torch.Tensor,
                    examples: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """Per-example layer Jacobians J_k = ∂h_k/∂h_{k−1} with BN's batch statistics held fixed.

    Args:
        model: an ``nn.Sequential`` (see ``blocks``), any mode; BN layers use the
            statistics of ``x`` (``frozen_statistics``), so for a BN net this is the
            training-mode function at x, example by example. A model without batch
            statistics is differentiated in eval mode.
        x: (B, ...) a batch of inputs.
        examples: differentiate at the first ``examples`` inputs only (default all B); the BN
            statistics still come from the whole batch x.

    Returns: [(block name, J)] with J of shape (B, d_k, d_{k−1}) (B = ``examples`` if given),
        float64, from input to output.

    Raises:
        ValueError: ``examples`` not an int in 1..B; B < 2 in a model with BN layers; a model with no
            nonlinearity to cut at (``blocks``); a layer for which the frozen-statistics Jacobian is
            not defined (noisy layers, ghost BN over several ghost batches, re-estimated or frozen
            BN, a batch-norm class it does not know: see ``frozen_statistics``), named in the message.
        TypeError: ``model`` not an ``nn.Sequential``; with BN layers, ``x`` not a floating-point tensor.
        AttributeError: ``model`` not an ``nn.Module``, or (without BN layers) ``x`` not a tensor.
        RuntimeError: the model cannot take ``x`` (torch's error).
    """
    n = _check_examples(examples, x)
    with preserved_rng():
        net = frozen_statistics(model, x) if _statistics_layers(model, x.shape[0]) else copy.deepcopy(model).eval()
        net = net.double()
        parts = blocks(net)
        x = x.to(_device_of(net)).double()
        with torch.no_grad():
            hs = _representations(net, parts, x)
        out = []
        for (name, block), h in zip(parts, hs[:-1]):
            if isinstance(block[0], nn.Flatten):
                block = nn.Sequential(*list(block)[1:])
            out.append((name, _per_example(block)(h.detach()[:n])))
    return out


def input_output_jacobian(model: nn.Module, x: torch.Tensor, examples: int | None = None) -> torch.Tensor:
    """The per-example input-to-output Jacobian ∂logits/∂x = J_{L+1} ⋯ J_1 (BN statistics frozen).

    Shapes: x (B, ...); returns (B, num_outputs, num_inputs) float64 (B = ``examples`` if given,
    see ``layer_jacobians``).

    Raises:
        ValueError, TypeError, AttributeError, RuntimeError: as ``layer_jacobians``.
    """
    jacs = layer_jacobians(model, x, examples)
    total = jacs[0][1]
    for _, j in jacs[1:]:
        total = j @ total
    return total


def batch_jacobians(model: nn.Module, x: torch.Tensor,
                    only: Sequence[int] | None = None) -> list[tuple[str, torch.Tensor]]:
    """Full batch layer Jacobians ∂vec(H_k)/∂vec(H_{k−1}) in training mode, through the batch statistics.

    The model is evaluated in training mode on ``x`` (BN normalizes with the batch's mean and
    variance, and the derivative includes their dependence on every example); its running
    statistics and parameters are left as they were. Every layer runs as in a training step,
    so for a layer that draws random numbers in training mode ("noisy_bn", "noise", dropout)
    the result is the Jacobian for one draw, made from a copy of the random states: the
    states themselves (torch, NumPy, ``random``) are left as they were too. Every
    normalization layer is taken as it is, including those ``frozen_statistics`` refuses.

    Args:
        model: an ``nn.Sequential`` (see ``blocks``).
        x: (B, ...) with B >= 2. The matrices are (B·d)², so keep B·d to a few thousand.
        only: indices of the blocks to differentiate (default: all), e.g. ``range(1, L)``
            for the hidden-to-hidden layers only.

    Returns: [(block name, J)] with J of shape (B·d_k, B·d_{k−1}) float64, rows and columns
        ordered example-major (index i·d + j for example i, unit j).

    Raises:
        ValueError: B < 2; an index in ``only`` outside the blocks; a model with no nonlinearity to
            cut at (``blocks``).
        TypeError: ``model`` not an ``nn.Sequential``.
        AttributeError: ``model`` not an ``nn.Module``, or ``x`` not a tensor.
        RuntimeError: the model cannot take ``x`` (torch's error).
    """
    if x.shape[0] < 2:
        raise ValueError(f"the batch Jacobian needs a batch of at least 2 examples, got x of shape {tuple(x.shape)}")
    with preserved_rng():
        net = copy.deepcopy(model).double().train()
        parts = blocks(net)
        x = x.to(_device_of(net)).double()
        with torch.no_grad():
            hs = _representations(net, parts, x)
        wanted = _wanted(only, len(parts))
        out = []
        for k, ((name, block), h) in enumerate(zip(parts, hs[:-1])):
            if k not in wanted:
                continue
            if isinstance(block[0], nn.Flatten):
                block = nn.Sequential(*list(block)[1:])
            b, d_in = h.shape

            def f(flat: torch.Tensor, block: nn.Module = block) -> torch.Tensor:
                return block(flat.view(b, d_in)).reshape(-1)
            # autograd row by row (not torch.func): bnlab's BatchNorm is a custom autograd.Function
            with torch.enable_grad():
                out.append((name, torch.autograd.functional.jacobian(f, h.detach().reshape(-1))))
    return out


@dataclass
class JacobianSpectra:
    """Singular values of a network's layer Jacobians and of its input-to-output Jacobian.

    Attributes:
        layers: block names, input to output (``blocks``).
        singular_values: per block, (B, min(d_k, d_{k−1})) for ``statistics="frozen"``
            (each example's singular values, descending) or (1, min(B·d_k, B·d_{k−1}))
            for ``statistics="batch"`` (the whole batch Jacobian's).
        end_to_end: the input-to-output Jacobian's singular values, same layout
            (``statistics="frozen"`` only; ``None`` for "batch").
        statistics: "frozen" or "batch".
    """

    layers: list[str]
    singular_values: list[np.ndarray]
    end_to_end: np.ndarray | None
    statistics: str

    def median(self) -> np.ndarray:
        """(L+1,) median singular value of each block over examples and directions."""
        return np.asarray([float(np.median(s)) for s in self.singular_values])

    def rms(self) -> np.ndarray:
        """(L+1,) root mean square singular value of each block (= ‖J‖_F / √rank-dim), over examples."""
        return np.asarray([float(np.sqrt(np.mean(s ** 2))) for s in self.singular_values])

    def percentiles(self, q: Sequence[float] = (10, 50, 90)) -> np.ndarray:
        """(L+1, len(q)) percentiles of each block's singular values, pooled over examples and directions.

        Args:
            q: percentiles in [0, 100], e.g. (10, 50, 90): the spread of the spectrum
                beside its centre (``median`` is q = 50; ``rms`` weighs the large values).

        Raises:
            ValueError: ``q`` is empty or has a value outside [0, 100].
        """
        qs = np.asarray(q, dtype=np.float64).ravel()
        if qs.size == 0 or not np.all((qs >= 0) & (qs <= 100)):
            raise ValueError(f"q must be a non-empty sequence of percentiles in [0, 100], got {q!r}")
        return np.stack([np.percentile(s, qs) for s in self.singular_values])


def jacobian_spectra(model: nn.Module, x: torch.Tensor, statistics: str = "frozen",
                     only: Sequence[int] | None = None, examples: int | None = None) -> JacobianSpectra:
    """Singular values of every layer Jacobian (and, frozen, of ∂logits/∂x) at the batch x.

    Args:
        model: an ``nn.Sequential`` (see ``blocks``); left bit-identical.
        x: (B, ...) a batch of inputs (the course uses real training images).
        statistics: "frozen" (per-example Jacobians, BN statistics of x held fixed) or
            "batch" (the full batch Jacobian through the statistics, training mode).
        only: for "batch", the blocks to differentiate (``batch_jacobians``); default all.
        examples: for "frozen", the number of examples (the first ones of x) whose Jacobians
            are taken; the BN statistics still come from all of x. Default all.

    Returns: a ``JacobianSpectra``. Source: Ioffe & Szegedy 2015, §3.3 (the conjecture);
        Yang et al. 2019 (the batch Jacobian and gradient explosion).

    Raises:
        ValueError: ``statistics`` not "frozen"/"batch"; ``only`` with "frozen" or ``examples`` with
            "batch"; as ``layer_jacobians`` ("frozen") or ``batch_jacobians`` ("batch").
        TypeError: ``model`` not an ``nn.Module`` (for the cut, an ``nn.Sequential``); ``x`` not a
            floating-point tensor.
        RuntimeError: the model cannot take ``x`` (torch's error).
    """
    _check_statistics(statistics)
    _check_model(model)
    _check_tensor(x, "x")
    if only is not None and statistics == "frozen":
        raise ValueError("only= selects blocks for statistics='batch'; the frozen spectra are cheap and "
                         "always cover every block (drop only=, or pass statistics='batch')")
    if examples is not None and statistics == "batch":
        raise ValueError("examples= applies to statistics='frozen'; the batch Jacobian covers the whole batch x "
                         "(pass a smaller x instead)")
    with preserved_state(model):
        if statistics == "frozen":
            jacs = layer_jacobians(model, x, examples)
            total = jacs[0][1]
            for _, j in jacs[1:]:
                total = j @ total
            e2e: np.ndarray | None = torch.linalg.svdvals(total.detach()).cpu().numpy()
        else:
            jacs = batch_jacobians(model, x, only)
            e2e = None
        svs = [torch.linalg.svdvals((j if j.dim() == 3 else j.unsqueeze(0)).detach()).cpu().numpy() for _, j in jacs]
    return JacobianSpectra([n for n, _ in jacs], svs, e2e, statistics)
