"""The noise of batch statistics and of dropout, measured and predicted.

``batch_statistics`` draws many batches of m values of a unit and returns each batch's
mean and biased variance; ``batch_mean_std`` and ``batch_variance_std`` give what theory
predicts for their spread; ``dropout_variance_ratio`` is the variance shift of inverted
dropout (Li et al. 2019, §3).
"""
from __future__ import annotations

import numpy as np
import torch

from bnlab import arguments as A

__all__ = ["batch_statistics", "batch_mean_std", "batch_variance_std", "dropout_variance_ratio"]


def batch_statistics(values: torch.Tensor, m: int, num_batches: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Means and biased variances of ``num_batches`` batches of ``m`` values drawn from ``values``.

    Batches are drawn i.i.d. with replacement (so the formulas for independent samples
    apply exactly; training batches are drawn without replacement from 60,000 images, which
    shrinks the spread by a factor √((N−m)/(N−1)) ≥ 0.99 for m ≤ 1,024).

    Args:
        values: (N,) one unit's values over a dataset, or (N, C) several units.
        m: batch size ≥ 2. num_batches: how many batches. seed: fixes the draws.

    Returns:
        means, variances: each (num_batches,) or (num_batches, C) (float64).

    Raises:
        TypeError: ``values`` is not a torch tensor, or ``m``/``num_batches`` not an int.
        ValueError: ``m`` < 2 or ``num_batches`` < 1.
    """
    if m < 2:
        raise ValueError(f"m must be >= 2 (one value has no batch variance), got {m}")
    A.integer("m", m, minimum=2)
    A.integer("num_batches", num_batches, minimum=1)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch tensor (N,) or (N, C), got {type(values).__name__}; "
                        "convert a NumPy array with torch.from_numpy(values).")
    v = values.double()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(v), (num_batches, m), generator=gen)
    per_batch = m * (v[0].numel())
    chunk = max(1, 2 ** 22 // per_batch)             # gather at most ~4M values (32 MB) at a time
    means, variances = [], []
    for i in range(0, num_batches, chunk):
        batches = v[idx[i:i + chunk]]                # (b, m) or (b, m, C)
        var, mean = torch.var_mean(batches, dim=1, correction=0)
        means.append(mean)
        variances.append(var)
    return torch.cat(means).numpy(), torch.cat(variances).numpy()


def batch_mean_std(std: float | np.ndarray, m: int | np.ndarray) -> np.ndarray:
    """Standard deviation of the mean of m i.i.d. values of standard deviation σ: σ/√m.

    Raises:
        ValueError: a batch size ``m`` < 1.
    """
    if np.any(np.asarray(m) < 1):
        raise ValueError(f"m is a batch size and must be >= 1, got {m}.")
    return np.asarray(std, dtype=float) / np.sqrt(np.asarray(m, dtype=float))


def batch_variance_std(var: float | np.ndarray, kurtosis: float | np.ndarray, m: int | np.ndarray) -> np.ndarray:
    """Standard deviation of the biased batch variance σ_B² of m i.i.d. values.

    With population variance σ² and kurtosis κ = E[(x−μ)⁴]/σ⁴ (3 for a Gaussian), the unbiased
    sample variance s² has Var(s²) = σ⁴ (κ/m − (m−3)/(m(m−1))) (the classical variance of the sample variance), and
    σ_B² = (m−1)/m · s², so std(σ_B²) = (m−1)/m · σ² √(κ/m − (m−3)/(m(m−1))). For large m this
    is σ² √((κ−1)/m): heavier tails (larger κ) make the variance noisier.

    Raises:
        ValueError: a batch size ``m`` < 2.
    """
    m = np.asarray(m, dtype=float)
    if np.any(m < 2):
        raise ValueError(f"m is a batch size and must be >= 2 for a batch variance, got {m}.")
    var = np.asarray(var, dtype=float)
    kurtosis = np.asarray(kurtosis, dtype=float)
    return (m - 1) / m * var * np.sqrt(kurtosis / m - (m - 3) / (m * (m - 1)))


def dropout_variance_ratio(mean: float | np.ndarray, var: float | np.ndarray, keep: float) -> np.ndarray:
    """Train/test variance ratio of a unit under inverted dropout (Li et al. 2019, §3, Eq. 2–3).

    A unit x with mean c and variance v becomes y = a·x/p in training, a ~ Bernoulli(p)
    (p the *keep* probability; ``nn.Dropout(q)`` has q = 1 − p), and y = x at test time. Then
    Var_train(y) = E[a²x²]/p² − c² = (c² + v)/p − c² and Var_test(y) = v, so the ratio is
    ((c² + v)/p − c²)/v: 1/p for a zero-mean unit, larger for units with c² ≫ v (after a ReLU).

    Raises:
        ValueError: ``keep`` outside (0, 1].
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep is the keep probability p = 1 − drop probability, in (0, 1]; got {keep}")
    c2 = np.asarray(mean, dtype=float) ** 2
    v = np.asarray(var, dtype=float)
    return ((c2 + v) / keep - c2) / v


__all__ += ["dropout_variance_shift"]


@torch.no_grad()
def dropout_variance_shift(model: torch.nn.Module, x: torch.Tensor, dropout: str, after: str,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """The variance shift of one dropout layer, measured on ``x`` (Li et al. 2019, §3).

    The model runs in eval mode twice on ``x``: once as at test time, once with only the
    dropout module ``dropout`` in training mode (fresh masks from a generator seeded with
    ``seed``; the global RNG is restored). Recorded: the units entering the dropout layer,
    what leaves it, and the input of module ``after`` (e.g. the next BN layer, whose running
    statistics were collected with dropout on). The model is left bit-identical.

    Returns: a dict of (C,) or (D,) float64 arrays over the N examples:
        ``mean``, ``var``: mean c and variance v of each unit entering dropout;
        ``var_train``: variance of each unit leaving dropout in training mode;
        ``next_var_test``, ``next_var_train``: variance of each unit entering ``after``,
        dropout off and on;
        and ``keep``: the keep probability p = 1 − q (a float).

    Raises:
        ValueError: the model has no module ``dropout`` or ``after``, or ``dropout`` is not an ``nn.Dropout``.
    """
    from bnlab.probes.core import _modules_by_name, preserved_state

    mods = _modules_by_name(model, [dropout, after])
    drop, nxt = mods[dropout], mods[after]
    if not isinstance(drop, torch.nn.Dropout):
        raise ValueError(f"module {dropout!r} is {type(drop).__name__}, not nn.Dropout")
    seen: dict[str, torch.Tensor] = {}
    hooks = [drop.register_forward_hook(lambda m, a, out: seen.update(unit=a[0].double(), dropped=out.double())),
             nxt.register_forward_pre_hook(lambda m, a: seen.update(next=a[0].double()))]
    try:
        with preserved_state(model):
            model.eval()
            model(x)
            test = dict(seen)
            drop.train()
            torch.manual_seed(seed)
            model(x)
            train = dict(seen)
    finally:
        for h in hooks:
            h.remove()
    var, mean = torch.var_mean(test["unit"], dim=0, correction=0)
    return dict(mean=mean.numpy(), var=var.numpy(), var_train=train["dropped"].var(0, unbiased=False).numpy(),
                next_var_test=test["next"].var(0, unbiased=False).numpy(),
                next_var_train=train["next"].var(0, unbiased=False).numpy(), keep=1.0 - drop.p)
