"""``fit``: SGD on in-memory tensors with index batches, probes and divergence detection."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from bnlab import arguments as A
from bnlab.data import Dataset
from bnlab.layers import is_batchnorm
from bnlab.runtime import is_quick, resolve_device, seed_everything

__all__ = ["fit", "fit_seeds", "History", "ProbeContext", "batch_indices"]


@dataclass
class ProbeContext:
    """What a probe sees when ``fit`` calls it, just before the update of ``step``.

    Attributes:
        model: the model, in train mode.
        step: number of SGD steps taken so far.
        x, y: the batch the next update will use, (B, ...) and (B,).
        lr: the learning rate of this step (the scheduled one when ``fit`` has ``lr_schedule``).
        loss_fn: the training loss, ``loss_fn(logits, y) -> scalar``.
        data: the dataset (on the training device).
    """

    model: nn.Module
    step: int
    x: torch.Tensor
    y: torch.Tensor
    lr: float
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    data: Dataset


@dataclass
class History:
    """What happened during ``fit``.

    Attributes:
        steps: (E,) steps at which the model was evaluated (0 = before training).
        test_acc, test_loss: (E,) test accuracy and mean cross-entropy at those steps.
        train_acc: (E,) accuracy on a fixed 10k subset of the training set, or empty.
        train_loss: (T,) the training loss of every step taken.
        probes: name → list of whatever the probe returned, one entry per probe call.
        probe_steps: name → steps at which the probe ran.
        diverged: True if the loss became NaN/inf or exploded; training stopped there.
        diverged_at: the step whose loss was first non-finite (or above the limit), else None.
        config: the settings of the run (lr, batch size, seed, ...).
        seconds: wall-clock time of the run.
    """

    steps: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    train_loss: np.ndarray
    probes: dict[str, list[Any]] = field(default_factory=dict)
    probe_steps: dict[str, list[int]] = field(default_factory=dict)
    diverged: bool = False
    diverged_at: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the last evaluation."""
        return float(self.test_acc[-1])

    def accuracy_at(self, step: int) -> float:
        """Test accuracy at the last evaluation at or before ``step``.

        Raises:
            ValueError: no evaluation at or before ``step``.
        """
        i = int(np.searchsorted(self.steps, step, side="right")) - 1
        if i < 0:
            raise ValueError(f"no evaluation at or before step {step}; evaluated at {self.steps[:5]}...")
        return float(self.test_acc[i])

    def probe(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a probe, values stacked into an array of shape (K, ...).

        Raises:
            KeyError: the run recorded no probe called ``name``.
        """
        if name not in self.probes:
            raise KeyError(f"no probe named {name!r}; this run recorded {sorted(self.probes)}")
        return np.asarray(self.probe_steps[name]), np.asarray(self.probes[name])

    def smoothed_train_loss(self, window: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(steps, loss) averaged over consecutive windows of ``window`` steps."""
        n = len(self.train_loss) // window
        if n == 0:
            return np.arange(1, len(self.train_loss) + 1), self.train_loss.copy()
        loss = self.train_loss[: n * window].reshape(n, window).mean(axis=1)
        return (np.arange(n) + 1) * window, loss

    def __repr__(self) -> str:
        state = f"diverged at step {self.diverged_at}" if self.diverged else f"final test acc {self.final_accuracy:.4f}"
        return f"History({len(self.train_loss)} steps, {state})"


def steps_to(steps: np.ndarray, curve: np.ndarray, target: float, window: int = 1) -> float:
    """First step at which a (smoothed) curve reaches ``target``; ``inf`` if it never does.

    Args:
        steps: (E,) increasing steps, e.g. ``History.steps``.
        curve: (E,) values at those steps, e.g. the median test accuracy over seeds.
        target: the value to reach (curve ≥ target).
        window: > 1 smooths with a trailing mean over the last ``window`` values first
            (the first window − 1 steps are not eligible), so one lucky evaluation does not count.
    Returns: the step (float, so that ``inf`` can mean "never").

    Raises:
        ValueError: ``steps`` and ``curve`` are not 1-d of the same length, or ``window`` < 1.
    """
    s, c = np.asarray(steps, dtype=float), np.asarray(curve, dtype=float)
    if s.ndim != 1 or s.shape != c.shape:
        raise ValueError(f"steps and curve must be 1-d of the same length, got {s.shape} and {c.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(c) < window:
        return float("inf")
    smooth = np.convolve(c, np.ones(window) / window, mode="valid")   # (E - window + 1,)
    hit = np.nonzero(smooth >= target)[0]
    return float(s[hit[0] + window - 1]) if len(hit) else float("inf")


__all__ += ["steps_to"]


def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
    """Yield ``steps`` index batches of size ``batch_size`` from shuffled epochs of range(n).

    Each epoch is a fresh permutation; its last incomplete batch is dropped.

    Raises:
        TypeError: ``n``, ``batch_size`` or ``steps`` is not an int.
        ValueError: ``batch_size`` < 1, ``steps`` or ``n`` < 0, or ``batch_size`` > ``n``.
    """
    A.integer("batch_size", batch_size, minimum=1)
    A.integer("steps", steps, minimum=0)
    per_epoch = A.integer("n", n, minimum=0) // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} training examples.")
    given = 0
    while given < steps:
        perm = torch.randperm(n, generator=generator)[: per_epoch * batch_size].view(per_epoch, batch_size)
        for row in perm[: steps - given]:
            yield row
        given += min(per_epoch, steps - given)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    correct, total_loss = 0, 0.0
    for i in range(0, len(x), chunk):
        logits = model(x[i:i + chunk])
        total_loss += nn.functional.cross_entropy(logits, y[i:i + chunk], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + chunk]).sum().item()
    model.train(was_training)
    return correct / len(x), total_loss / len(x)


def _default_progress() -> bool:
    if is_quick():
        return False
    return os.environ.get("BNLAB_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def _as_dataset(data: Dataset | Sequence[torch.Tensor]) -> Dataset:
    """``data`` as a ``Dataset`` of float inputs and int64 labels (NumPy arrays are converted), checked."""
    if isinstance(data, Dataset):
        parts = (data.x_train, data.y_train, data.x_test, data.y_test)
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and len(data) == 4:
        parts = tuple(data)
    else:
        raise TypeError("data must be a bnlab.data.Dataset (e.g. bnlab.data.load()) or a tuple "
                        f"(x_train, y_train, x_test, y_test) of tensors or NumPy arrays; got {type(data).__name__}.")
    names = ("x_train", "y_train", "x_test", "y_test")
    x_train, y_train, x_test, y_test = (A.as_tensor(n, v) for n, v in zip(names, parts))
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if not x.is_floating_point():
            raise TypeError(f"{name} must hold floats, got {x.dtype}; convert it with {name}.float() "
                            f"(raw uint8 pixels: {name}.float() / 255).")
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"{name} must have shape (N, ...) with N >= 1 examples, got {tuple(x.shape)}.")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"x_train and x_test differ in the shape of one example: {tuple(x_train.shape[1:])} vs "
                         f"{tuple(x_test.shape[1:])}.")
    labels = []
    for name, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test)):
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got {y.dtype}; convert it with "
                            f"{name}.long() (a NumPy array: torch.from_numpy({name}).long()).")
        if y.ndim != 1:
            raise ValueError(f"{name} must be (N,) class indices, got shape {tuple(y.shape)}"
                             + ("; one-hot labels? use y.argmax(1)." if y.ndim == 2 else "."))
        if len(y) != len(x):
            raise ValueError(f"inputs and labels differ in length: {len(x)} inputs but {len(y)} labels in {name}.")
        if int(y.min()) < 0:
            raise ValueError(f"{name} holds negative labels (min {int(y.min())}); class indices run from 0.")
        labels.append(y.long())
    y_train, y_test = labels
    if isinstance(data, Dataset):
        if y_train is data.y_train and y_test is data.y_test:
            return data
        return dataclasses.replace(data, y_train=y_train, y_test=y_test)
    classes = tuple(str(c) for c in range(int(max(y_train.max(), y_test.max())) + 1))
    return Dataset(x_train, y_train, x_test, y_test, classes, "tensors", source=None)  # type: ignore[arg-type]


def _validate_fit_args(model: Any, steps: Any, lr: Any, batch_size: Any, seed: Any, momentum: Any,
                       weight_decay: Any, eval_every: Any, probes: Any, probe_every: Any, loss_fn: Any,
                       diverge_above: Any, eval_chunk: Any, lr_schedule: Any = None, eval_train: Any = False,
                       progress: Any = None) -> None:
    """Check ``fit``'s arguments before anything runs: each error names the argument and the fix."""
    if lr_schedule is not None and not callable(lr_schedule):
        raise TypeError(f"lr_schedule must be a function step ↦ factor (e.g. bnlab.schedules.doubling(200)) or "
                        f"None, got {type(lr_schedule).__name__}.")
    for name, value in (("eval_train", eval_train), ("progress", progress)):
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}.")
    if not (isinstance(model, nn.Module) or callable(model)):
        raise TypeError(f"model must be an nn.Module or a function that builds one (e.g. lambda: models.mlp()), "
                        f"got {type(model).__name__}.")
    A.integer("steps", steps, minimum=0)
    A.real("lr", lr, minimum=0, strict=True, hint="The learning rate is a positive number such as 0.1.")
    A.integer("batch_size", batch_size, minimum=1)
    A.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    A.real("momentum", momentum, minimum=0, hint="SGD momentum is in [0, 1), e.g. 0.9; 0 for plain SGD.")
    A.real("weight_decay", weight_decay, minimum=0)
    for name, value in (("eval_every", eval_every), ("probe_every", probe_every)):
        if value is not None:
            A.integer(name, value, minimum=1, hint="None picks a default.")
    if probes is not None and not (isinstance(probes, Mapping) and all(
            isinstance(k, str) and callable(f) for k, f in probes.items())):
        raise TypeError("probes must be a dict {name: function(ProbeContext)}, e.g. "
                        f"probes={{'grads': bnlab.probes.GradientNorms()}}; got {type(probes).__name__}.")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(logits, y) -> scalar, got {type(loss_fn).__name__}.")
    A.real("diverge_above", diverge_above, minimum=0, strict=True, finite=False)
    A.integer("eval_chunk", eval_chunk, minimum=1)


def _check_shapes(model: nn.Module, data: Dataset, batch_size: int, cross_entropy: bool, dev: torch.device) -> None:
    """The model, the data and the batch size fit together (a dry forward pass on two examples);
    leaves the model on ``dev`` in train mode."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model factory returned {type(model).__name__}, not an nn.Module.")
    model.to(dev)
    if batch_size > len(data.x_train):
        raise ValueError(f"batch_size={batch_size} is larger than the {len(data.x_train)} training examples.")
    if batch_size < 2 and any(is_batchnorm(m) for m in model.modules()):
        raise ValueError(
            f"batch_size={batch_size} with batch normalization: batch statistics of one example are "
            "undefined (the output would be β for every input). Use batch_size >= 2."
        )
    try:
        with torch.no_grad():
            out = model.eval()(data.x_train[:2])
    except Exception as err:
        raise ValueError(f"the model cannot take this data's inputs (one example of shape "
                         f"{tuple(data.x_train.shape[1:])}, {data.x_train.dtype}): {type(err).__name__}: {err} "
                         f"Build the model for {data.in_features} input features (e.g. "
                         f"models.mlp(in_features={data.in_features})) and the data's dtype.") from err
    finally:
        model.train()
    classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    if cross_entropy and (not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model gives {shape} for 2 examples, but the labels run to {classes - 1}: "
                         f"cross-entropy needs (N, {classes}) logits; build it with num_classes={classes}.")


def _param_groups(model: nn.Module, weight_decay: float, names: Sequence[str] | None) -> Any:
    """``model.parameters()``, or two SGD parameter groups when weight decay is limited to ``names``."""
    if names is None:
        return model.parameters()
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"weight_decay_params must be a list of parameter names or prefixes ending in '.', "
                        f"e.g. ['fc1.', 'fc2.'], got {names!r}.")
    params = dict(model.named_parameters())
    chosen = {n for n in params if any(n == k or (k.endswith(".") and n.startswith(k)) for k in names)}
    if not chosen:
        raise ValueError(f"weight_decay_params={list(names)} matches no parameter of the model; its parameters "
                         f"are {list(params)}.")
    groups = [{"params": [p for n, p in params.items() if n in chosen], "weight_decay": weight_decay},
              {"params": [p for n, p in params.items() if n not in chosen], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def fit(model: nn.Module | Callable[[], nn.Module], data: Dataset | Sequence[torch.Tensor], steps: int,
        lr: float, batch_size: int = 60, seed: int = 0, momentum: float = 0.0, weight_decay: float = 0.0,
        eval_every: int | None = None, eval_train: bool = False,
        probes: Mapping[str, Callable[[ProbeContext], Any]] | None = None, probe_every: int | None = None,
        device: str | torch.device = "cpu", progress: bool | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        diverge_above: float = 1e4, eval_chunk: int = 10_000,
        lr_schedule: Callable[[int], float] | None = None,
        weight_decay_params: Sequence[str] | None = None) -> History:
    """Train ``model`` with minibatch SGD and return its ``History``.

    Args:
        model: an ``nn.Module``, or a function that builds one; a function is
            called after seeding, so the initialisation is fixed by ``seed`` too.
        data: a ``bnlab.data.Dataset`` (or a tuple x_train, y_train, x_test, y_test):
            x (N, ...) float, y (N,) int64. Kept in memory; batches are index slices.
        steps: number of SGD updates.
        lr, momentum, weight_decay: ``torch.optim.SGD`` settings.
        batch_size: examples per update (the paper: 60).
        seed: seeds torch, NumPy and Python, and the batch order.
        eval_every: evaluate test accuracy every this many steps (and at 0 and the end);
            default: about 50 evaluations per run.
        eval_train: also measure accuracy on a fixed 10,000-example subset of the training set.
        probes: name → function(ProbeContext) called every ``probe_every`` steps (default
            ``eval_every``; a probe's own ``every`` attribute wins) before that step's
            update, and once at the end. Whatever it returns is stored in ``History.probes``.
        device: "cpu", "cuda" or "auto".
        progress: show a ``tqdm.auto`` bar (default: on, except in quick mode or when
            ``BNLAB_PROGRESS=0``).
        loss_fn: default cross-entropy.
        diverge_above: a loss above this also counts as divergence (a cross-entropy of
            1e4 means logits off by thousands: the weights have blown up even if the
            sigmoids keep the numbers finite). ``float("inf")`` for NaN/inf only.
        lr_schedule: step t ↦ factor: update t uses ``lr * lr_schedule(t)``
            (``torch.optim.lr_scheduler.LambdaLR``), e.g. ``bnlab.schedules.doubling(200)``
            for a rising-learning-rate stress test; default a constant ``lr``.
        weight_decay_params: apply ``weight_decay`` only to these parameters: names from
            ``model.named_parameters()`` or prefixes ending in "." (``["fc1.", "fc2."]``);
            the others get none. Default ``None``: every parameter (``torch.optim.SGD``'s
            behaviour). E.g. decay only the scale-invariant weights feeding BN, not γ, β
            or the output layer (van Laarhoven 2017).

    A NaN, infinite or exploded loss stops training (checked every
    ``min(eval_every, 100)`` steps) and sets ``History.diverged``: sweeps keep going. Same seed, same model, same data → identical history on CPU.

    Raises:
        TypeError: ``model`` is neither an ``nn.Module`` nor a function returning one; ``data`` is not a
            ``Dataset`` or a 4-tuple of tensors/NumPy arrays, or its inputs are not floats or its labels
            not integers; an argument of the wrong type (``steps``, ``batch_size``, ``seed``,
            ``eval_every``, ``probe_every``, ``eval_chunk`` not ints; ``lr``, ``momentum``,
            ``weight_decay``, ``diverge_above`` not numbers; ``eval_train``/``progress`` not bools;
            ``probes`` not a dict; ``loss_fn``/``lr_schedule`` not callable; ``weight_decay_params``
            not a list of names).
        ValueError: ``steps`` < 0, ``lr`` <= 0, ``batch_size`` < 1 or larger than the training set
            (or < 2 with batch normalization), ``seed`` outside [0, 2**32 − 1], negative ``momentum``
            or ``weight_decay``, ``eval_every``/``probe_every``/``eval_chunk`` < 1,
            ``diverge_above`` <= 0; data of inconsistent shapes or lengths, or negative labels; a model
            that cannot take the inputs or gives fewer logits than there are classes;
            ``weight_decay_params`` that match no parameter.
        RuntimeError: ``device`` asks for CUDA and torch sees no GPU (see ``resolve_device``).
    """
    _validate_fit_args(model, steps, lr, batch_size, seed, momentum, weight_decay, eval_every, probes,
                       probe_every, loss_fn, diverge_above, eval_chunk, lr_schedule, eval_train, progress)
    data = _as_dataset(data)
    dev = resolve_device(device)
    seed_everything(seed)
    if not isinstance(model, nn.Module):
        model = model()
    if data.x_train.device != dev:
        data = data.to(dev)
    _check_shapes(model, data, batch_size, loss_fn is None, dev)
    loss_fn = loss_fn or nn.functional.cross_entropy
    eval_every = eval_every or max(1, steps // 50)
    probes = dict(probes or {})
    probe_every = probe_every or eval_every
    every = {name: int(getattr(fn, "every", probe_every)) for name, fn in probes.items()}
    generator = torch.Generator().manual_seed(seed)
    train_sub = None
    if eval_train:
        sub = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed + 1))[:10_000].to(dev)
        train_sub = (data.x_train[sub], data.y_train[sub])

    optimizer = torch.optim.SGD(_param_groups(model, weight_decay, weight_decay_params), lr=lr,
                                momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule) if lr_schedule is not None else None
    losses = torch.full((steps,), float("nan"), device=dev)  # on the device: no sync per step
    eval_steps: list[int] = []
    test_acc: list[float] = []
    test_loss: list[float] = []
    train_acc: list[float] = []
    probe_out: dict[str, list[Any]] = {name: [] for name in probes}
    probe_at: dict[str, list[int]] = {name: [] for name in probes}

    def evaluate(step: int) -> None:
        acc, loss = _evaluate(model, data.x_test, data.y_test, eval_chunk)
        eval_steps.append(step)
        test_acc.append(acc)
        test_loss.append(loss)
        if train_sub is not None:
            train_acc.append(_evaluate(model, *train_sub, eval_chunk)[0])

    def run_probes(step: int, x: torch.Tensor, y: torch.Tensor, force: bool = False) -> None:
        for name, fn in probes.items():
            if force or step % every[name] == 0:
                ctx = ProbeContext(model, step, x, y, optimizer.param_groups[0]["lr"], loss_fn, data)
                probe_out[name].append(fn(ctx))
                probe_at[name].append(step)

    bar = None
    if progress if progress is not None else _default_progress():
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, leave=False, desc=f"fit lr={lr:g} seed={seed}", mininterval=0.5)

    x_train, y_train = data.x_train, data.y_train
    check_every = min(eval_every, 100)
    diverged_at = None
    start = time.perf_counter()
    evaluate(0)
    step = 0
    idx = None
    for step, idx in enumerate(batch_indices(len(x_train), batch_size, steps, generator)):
        idx = idx.to(dev, non_blocking=True) if dev.type != "cpu" else idx
        x, y = x_train.index_select(0, idx), y_train.index_select(0, idx)
        if probes:
            run_probes(step, x, y)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses[step] = loss.detach()
        done = step + 1
        if done % check_every == 0 or done == steps:
            window = losses[max(0, done - check_every):done]
            bad = ~(window <= diverge_above)  # NaN compares False, so it counts as bad
            if bad.any():
                diverged_at = max(0, done - check_every) + int(bad.nonzero()[0, 0])
                losses = losses[: diverged_at + 1]
                evaluate(diverged_at + 1)
                break
        if done % eval_every == 0 and done != steps:
            evaluate(done)
        if bar is not None and done % 50 == 0:
            bar.update(50)
    else:
        if steps > 0:
            evaluate(steps)
            if probes:
                nxt = next(batch_indices(len(x_train), batch_size, 1, generator)).to(dev)
                run_probes(steps, x_train[nxt], y_train[nxt], force=True)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start

    config = dict(steps=steps, lr=lr, batch_size=batch_size, seed=seed, momentum=momentum,
                  weight_decay=weight_decay, eval_every=eval_every, device=str(dev), dataset=data.name)
    if weight_decay_params is not None:
        config["weight_decay_params"] = list(weight_decay_params)
    return History(
        steps=np.asarray(eval_steps), test_acc=np.asarray(test_acc), test_loss=np.asarray(test_loss),
        train_acc=np.asarray(train_acc), train_loss=losses.cpu().numpy().astype(np.float64),
        probes=probe_out, probe_steps=probe_at, diverged=diverged_at is not None, diverged_at=diverged_at,
        config=config, seconds=seconds,
    )


def _seed_list(seeds: Any) -> list[int]:
    if not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be an iterable of ints, e.g. seeds=range(3) or (0, 1, 2); got {seeds!r}.")
    return [A.integer("seed", s, minimum=0) for s in seeds]


def fit_seeds(make_model: Callable[[], nn.Module], data: Dataset, seeds: Iterable[int],
              workers: int | None = None, **kwargs: Any) -> list[History]:
    """``fit`` the model built by ``make_model`` once per seed (init and batch order both seeded),
    the seeds in parallel worker processes (see ``fit_many``); results in the order of ``seeds``.

    Raises:
        TypeError: ``seeds`` is not an iterable of ints.
        ValueError: a seed is negative.
        TypeError/ValueError: a run fails ``fit``'s argument checks (before anything runs).
        bnlab.parallel.TaskError: a run raised (see ``fit_many``).
        bnlab.parallel.WorkerDied: a worker was killed by the operating system.
    """
    seeds = _seed_list(seeds)
    return fit_many([dict(model=make_model, data=data, seed=s, **kwargs) for s in seeds], workers=workers)


# --------------------------------------------------------------------------- parallel runs

__all__ += ["fit_many", "grid", "select"]

_FIT_PARAMS = frozenset(inspect.signature(fit).parameters)


def _validate_run(run: Mapping[str, Any], i: int) -> None:
    """``fit``'s argument checks on one run of ``fit_many``, in this process, before any worker starts."""
    params = inspect.signature(fit).parameters
    args = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    args.update({k: v for k, v in run.items() if k != "settings"})
    missing = [k for k in params if k not in args]
    if missing:
        raise ValueError(f"runs[{i}] lacks {missing}, which fit() needs, e.g. dict(..., steps=1000, lr=0.1)")
    checked = inspect.signature(_validate_fit_args).parameters
    try:
        _validate_fit_args(**{k: args[k] for k in checked})
    except (TypeError, ValueError) as err:
        raise type(err)(f"runs[{i}]: {err}") from None


def _describe(run: Mapping[str, Any], i: int, n: int) -> str:
    settings = run.get("settings")
    if settings is None:
        settings = {k: v for k, v in run.items() if k not in ("model", "data", "probes")}
    shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
    return f"run {i + 1} of {n} ({shown})"


def fit_many(runs: Sequence[Mapping[str, Any]], workers: int | None = None,
             progress: bool | None = None) -> list[History]:
    """``fit`` every run in ``runs``, independent runs side by side in worker processes.

    Args:
        runs: a list of dicts of ``fit`` keyword arguments, each with ``model`` (a factory:
            a lambda or closure defined in a notebook is fine) and ``data``; an optional
            ``settings`` dict (as ``grid`` makes) is kept in ``History.config["settings"]``
            and names the run in error messages. Beware late binding: a lambda that reads a
            loop variable sees its last value; bind it (``grid`` does, or
            ``lambda norm=norm: models.mlp(norm=norm)``).
        workers: worker processes; None reads ``BNLAB_WORKERS``, else one per CPU core;
            1 runs them one after another in this process.
        progress: one ``tqdm.auto`` bar counting finished runs (default: on, except in quick
            mode or with ``BNLAB_PROGRESS=0``). The runs' own bars are off unless a run asks.

    Returns:
        the ``History`` of each run, in input order. Every run uses one torch thread,
        in a worker or sequentially, so its numbers are bit-identical to ``fit`` in a
        one-thread process, whatever the pool size (``History.seconds`` aside). A run that
        diverges comes back flagged (``History.diverged``), not as an exception.

    Raises:
        TypeError/ValueError: a run is not a dict, lacks ``model``/``data``, or names an
            argument ``fit`` does not take (checked before anything runs).
        bnlab.parallel.TaskError: a run raised; the message names its settings and holds
            the worker's traceback.
        bnlab.parallel.WorkerDied: a worker was killed by the operating system.
        KeyboardInterrupt: every worker is stopped first; no child process is left behind.
    """
    from bnlab.parallel import run_tasks

    if isinstance(runs, (Mapping, str)) or not isinstance(runs, Iterable):
        raise TypeError(f"runs must be a list of dicts of fit() keyword arguments (e.g. from train.grid), "
                        f"got {type(runs).__name__}.")
    runs = list(runs)
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise TypeError(f"runs[{i}] must be a dict of fit() keyword arguments, got {type(run).__name__}")
        missing = [k for k in ("model", "data") if k not in run]
        if missing:
            raise ValueError(f"runs[{i}] lacks {missing}: each run needs a model factory and the data, "
                             "e.g. dict(model=lambda: models.mlp(), data=ds, steps=1000, lr=0.1)")
        unknown = sorted(set(run) - _FIT_PARAMS - {"settings"})
        if unknown:
            raise ValueError(f"runs[{i}] has {unknown}, which fit() does not take; fit takes {sorted(_FIT_PARAMS)}")
        _validate_run(run, i)

    def one(i: int) -> History:
        kwargs = dict(runs[i])
        settings = kwargs.pop("settings", None)
        kwargs.setdefault("progress", False)
        hist = fit(**kwargs)
        if settings is not None:
            hist.config["settings"] = dict(settings)
        return hist

    show = progress if progress is not None else _default_progress()
    return run_tasks(one, len(runs), lambda i: _describe(runs[i], i, len(runs)), workers=workers,
                     progress=show, desc="runs")


def _is_axis(value: Any) -> bool:
    return isinstance(value, (list, range, np.ndarray))


def grid(make_model: Callable[..., nn.Module], data: Dataset | Sequence[torch.Tensor],
         seeds: Iterable[int] = (0,), **axes: Any) -> list[dict[str, Any]]:
    """The runs of a grid of settings, for ``fit_many``.

    Every keyword whose value is a list (or range, or NumPy array) is an axis to sweep;
    any other value is fixed. Names that are parameters of ``make_model`` go to the model
    factory (bound per run, so no late-binding surprise); the others go to ``fit``.
    Seeds are the innermost axis.

    Example::

        runs = train.grid(lambda norm, init_std: models.mlp(norm=norm, init_std=init_std), ds,
                          seeds=[0, 1, 2], norm=["bn", None], init_std=0.1,
                          lr=[0.1, 1.0, 8.0], steps=1000)
        hists = train.fit_many(runs)     # 2 × 3 × 3 = 18 runs
        bn = train.select(hists, norm="bn", lr=8.0)

    Returns:
        a list of run dicts (``model``, ``data``, ``seed``, the fit arguments, and
        ``settings``: the run's values of the swept axes and its seed).

    Raises:
        ValueError: a name is neither a parameter of ``make_model`` nor of ``fit``, or an axis is empty.
    """
    params = inspect.signature(make_model).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name in axes:
        if name in ("model", "data", "seed"):
            raise ValueError(f"{name!r} is set by grid itself; pass seeds=[...] for the seeds")
        if not (name in params or takes_any or name in _FIT_PARAMS):
            raise ValueError(f"{name!r} is neither a parameter of make_model ({list(params)}) nor of fit() "
                             f"({sorted(_FIT_PARAMS)})")
    seeds = _seed_list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=[0]")
    swept = {k: list(v) for k, v in axes.items() if _is_axis(v)}
    fixed = {k: v for k, v in axes.items() if not _is_axis(v)}
    empty = [k for k, v in swept.items() if not v]
    if empty:
        raise ValueError(f"axis {empty} has no values")
    runs = []
    for point in itertools.product(*swept.values()):
        values = {**fixed, **dict(zip(swept, point))}
        model_args = {k: v for k, v in values.items() if k in params or (takes_any and k not in _FIT_PARAMS)}
        fit_args = {k: v for k, v in values.items() if k not in model_args}
        for seed in seeds:
            runs.append(dict(model=functools.partial(make_model, **model_args), data=data, seed=seed, **fit_args,
                             settings={**dict(zip(swept, point)), "seed": seed}))
    return runs


def select(histories: Sequence[History], **settings: Any) -> list[History]:
    """The histories whose ``config["settings"]`` (from ``grid``) match every given value.

    Raises:
        ValueError: a history has no ``config["settings"]`` (it does not come from ``fit_many(grid(...))``).
    """
    out = []
    for h in histories:
        have = h.config.get("settings")
        if have is None:
            raise ValueError("a history has no settings: select works on the results of fit_many(grid(...))")
        if all(k in have and have[k] == v for k, v in settings.items()):
            out.append(h)
    return out


# --------------------------------------------------------------------------- full-batch gradient descent

__all__ += ["fit_full_batch"]


def fit_full_batch(model: nn.Module | Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int,
                   lr: float, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   seed: int = 0, probes: Mapping[str, Callable[[ProbeContext], Any]] | None = None,
                   probe_every: int | None = None, device: str | torch.device = "cpu",
                   diverge_above: float = math.inf) -> History:
    """Full-batch gradient descent, w ← w − lr ∇L(w), on the whole (x, y) at every step.

    Used for the deep linear network (``bnlab.models.deep_linear``, ``dln_data``,
    ``dln_loss``). The model stays in train mode (BN normalizes with the full
    batch's statistics). Probes work as in ``fit``: called with a ``ProbeContext``
    (x, y = the full batch, ``data`` = None) before the update of step t when
    t % every == 0, and once at the end.

    Args:
        model: an ``nn.Module`` or a function building one (called after seeding with ``seed``).
        x: (N, ...) inputs. y: (N, ...) targets.
        steps: number of gradient steps. lr: the step size.
        loss_fn: ``loss_fn(model(x), y) -> scalar``; default mean squared error
            per sample (``bnlab.models.dln_loss``).
        probes, probe_every: name → probe, and its default period (default: steps // 50).
        diverge_above: a loss above this also counts as divergence (default: only NaN/inf).

    Returns:
        a ``History`` with ``train_loss`` (T,) the full-batch loss before each update,
        ``steps`` = [0, T] and ``test_loss`` = the full-batch loss at those steps (there
        is no test set; ``test_acc`` is NaN), ``diverged``/``diverged_at`` when the loss
        became NaN/inf (training stops there), and ``config["final_loss"]``.

    Raises:
        TypeError: ``steps`` is not an int, ``lr`` not a number, ``x``/``y`` not tensors or NumPy
            arrays, or ``x`` does not hold floats.
        ValueError: ``steps`` < 0, ``lr`` <= 0 or not finite, or ``x`` and ``y`` differ in length.
        RuntimeError: ``device`` asks for CUDA and torch sees no GPU (see ``resolve_device``).
    """
    A.integer("steps", steps, minimum=0)
    A.real("lr", lr, minimum=0, strict=True, hint="The learning rate is a positive number such as 0.1.")
    x, y = A.as_tensor("x", x), A.as_tensor("y", y)
    if not x.is_floating_point():
        raise TypeError(f"x must hold floats, got {x.dtype}; convert it with x.float().")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if loss_fn is None:
        from bnlab.models import dln_loss
        loss_fn = dln_loss
    dev = resolve_device(device)
    seed_everything(seed)
    if not isinstance(model, nn.Module):
        model = model()
    model.to(dev).train()
    x, y = x.to(dev), y.to(dev)
    probes = dict(probes or {})
    default_every = probe_every or max(1, steps // 50)
    every = {name: int(getattr(fn, "every", default_every)) for name, fn in probes.items()}
    probe_out: dict[str, list[Any]] = {name: [] for name in probes}
    probe_at: dict[str, list[int]] = {name: [] for name in probes}

    def run_probes(step: int, force: bool = False) -> None:
        for name, fn in probes.items():
            if force or step % every[name] == 0:
                probe_out[name].append(fn(ProbeContext(model, step, x, y, lr, loss_fn, None)))  # type: ignore[arg-type]
                probe_at[name].append(step)

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses: list[float] = []
    diverged_at = None
    start = time.perf_counter()
    for step in range(steps):
        if probes:
            run_probes(step)
        loss = loss_fn(model(x), y)
        value = float(loss.detach())
        losses.append(value)
        if not (math.isfinite(value) and value <= diverge_above):
            diverged_at = step
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if diverged_at is None:
        with torch.no_grad():
            state = [b.detach().clone() for b in model.buffers()]
            final = float(loss_fn(model(x), y))
            for b, s in zip(model.buffers(), state):  # measuring leaves running statistics alone
                b.copy_(s)
        if not (math.isfinite(final) and final <= diverge_above):
            diverged_at = steps
        elif probes and steps > 0:
            run_probes(steps, force=True)
    else:
        final = float("nan")
    seconds = time.perf_counter() - start
    done = len(losses) if diverged_at is None else diverged_at
    first = losses[0] if losses else final
    config = dict(steps=steps, lr=lr, seed=seed, full_batch=len(x), device=str(dev), final_loss=final)
    return History(
        steps=np.asarray([0, done]), test_acc=np.full(2, np.nan), test_loss=np.asarray([first, final]),
        train_acc=np.asarray([]), train_loss=np.asarray(losses, dtype=np.float64), probes=probe_out,
        probe_steps=probe_at, diverged=diverged_at is not None, diverged_at=diverged_at, config=config,
        seconds=seconds,
    )
