"""Batch and layer normalization in NumPy: the homework reference.

Every function but the spatial ones works on a 2-D array ``x`` of shape (N, D): N examples (the
mini-batch, the paper's m) and D features. Forward functions return
``(out, cache)`` and backward functions take ``(dout, cache)`` and return the
gradients ``(dx, dgamma, dbeta)``, in the style of CS231n's ``layers.py``.

The cache of ``batchnorm_forward`` is a dict holding every node of the
computational graph (Ioffe & Szegedy 2015, Algorithm 1), numbered as in notebook 02:
1 ``mu``, 2 ``xc``, 3 ``var``, 4 ``std``, 5 ``inv_std``, 6 ``xhat``, 7 ``out`` (= y).
``batchnorm_backward_nodes`` returns the gradient at every node under the same keys.

==========  =========  ==========================================================
key         shape      value
==========  =========  ==========================================================
``x``       (N, D)     the input
``mu``      (D,)       batch mean, :math:`\\mu_B = \\frac1m\\sum_i x_i`
``xc``      (N, D)     centred input, :math:`x_i - \\mu_B`
``var``     (D,)       biased batch variance, :math:`\\sigma_B^2 = \\frac1m\\sum_i (x_i-\\mu_B)^2`
``std``     (D,)       :math:`\\sqrt{\\sigma_B^2 + \\epsilon}`
``inv_std`` (D,)       :math:`1/\\sqrt{\\sigma_B^2 + \\epsilon}`
``xhat``    (N, D)     normalized input :math:`\\hat x_i`
``gamma``   (D,)       scale γ
``beta``    (D,)       shift β
``eps``     float      ε
``layer``   str        ``"batchnorm"`` (``"layernorm"``, ``"groupnorm"`` in theirs)
==========  =========  ==========================================================

The layer-norm cache has the same keys, with statistics of shape (N, 1)
(taken over the D features of each example instead of over the batch). Each
backward function refuses a cache its forward did not make.

For images, ``spatial_batchnorm_forward``/``spatial_batchnorm_backward`` take
(N, C, H, W) and normalize per channel over N·H·W values, as ``nn.BatchNorm2d``
(CS231n's spatial batch norm).

No torch here: the torch layer is ``bnlab.layers.BatchNorm``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt", "batchnorm_inference",
    "layernorm_forward", "layernorm_backward", "update_running_stats", "RunningStats",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "groupnorm_forward", "groupnorm_backward",
    "batchnorm_backward_nodes", "BACKWARD_NODES",
]

Cache = dict[str, Any]


# --------------------------------------------------------------------------- input checks

_SPATIAL_ADVICE = (
    "For images (N, C, H, W) batch norm is per channel over N·H·W values: use "
    "spatial_batchnorm_forward(x, gamma, beta), or move channels last and flatten, "
    "x.transpose(0, 2, 3, 1).reshape(-1, C). (x.reshape(len(x), -1) would normalize every pixel "
    "separately: a different layer from nn.BatchNorm2d.)"
)


def _as_float_array(x: Any, name: str, ndim: int, shape_doc: str) -> np.ndarray:
    """``x`` as a finite floating-point array of ``ndim`` dimensions, or an error that names the fix."""
    if isinstance(x, (str, bytes)) or x is None:
        raise ValueError(f"{name} must be a NumPy array of shape {shape_doc}, got {type(x).__name__}.")
    try:
        arr = np.asarray(x)
    except Exception as err:  # e.g. a torch tensor that requires grad
        raise ValueError(f"{name} could not be read as a NumPy array ({err}). These functions are NumPy: pass "
                         f"{name}.detach().numpy() for a torch tensor (bnlab.layers holds the torch layers).") from None
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric array of shape {shape_doc}; got an array of Python objects "
                        "(ragged lists?).")
    if arr.ndim != ndim:
        advice = _SPATIAL_ADVICE if arr.ndim == 4 and ndim == 2 else (
            "Flatten features first, e.g. x.reshape(len(x), -1)." if ndim == 2 else
            "Pass conv activations of shape (N, C, H, W); for (N, D) features use batchnorm_forward.")
        raise ValueError(f"{name} must be a {ndim}-D array of shape {shape_doc}; got shape {arr.shape}. {advice}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point numbers; got dtype {arr.dtype}. Convert it with "
                        f"{name}.astype(np.float64) (raw uint8 pixels: {name}.astype(np.float64) / 255).")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds non-finite values (NaN or inf), the first at index {tuple(bad)}: "
                         "find where they came from (a diverged run? a division by zero?) before normalizing.")
    return arr


def _as_float_2d(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a floating-point (N, D) array, or an error that says what is wrong and how to fix it."""
    return _as_float_array(x, name, 2, "(N, D) (N examples, D features)")


def _as_vector(v: Any, d: int, name: str, dtype: np.dtype) -> np.ndarray:
    """A per-feature parameter as a (D,) array of ``dtype``."""
    if isinstance(v, (str, bytes)) or v is None:
        raise ValueError(f"{name} must be a NumPy array of shape ({d},), got {type(v).__name__}.")
    arr = np.asarray(v)
    if arr.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), one entry per feature (channel) of x; got shape "
                         f"{arr.shape}. E.g. {name} = np.{'ones' if name == 'gamma' else 'zeros'}({d}).")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf).")
    return arr.astype(dtype, copy=False)


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise ValueError(f"eps must be a number (default 1e-5), got {type(eps).__name__}.")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0 (default 1e-5), got {eps}.")
    return float(eps)


def _check_constant(var: np.ndarray, eps: float, what: str) -> None:
    """eps = 0 and a zero variance give 0/0 = NaN: refuse instead of returning a NaN column."""
    if eps == 0 and np.any(var == 0):
        first = tuple(int(i) for i in np.argwhere(var == 0)[0])
        raise ValueError(
            f"eps=0 and {what} {first[0] if len(first) == 1 else first} is constant (variance 0): x̂ would be "
            "0/0 = NaN. Use eps > 0 (default 1e-5); constant inputs are common (Fashion-MNIST's border "
            "pixels are 0 in every image)."
        )


_CACHE_STATS = {"batchnorm": "(D,) per feature", "layernorm": "(N, 1) per example",
                "groupnorm": "(N, G, 1) per example and group"}


def _check_dout(dout: Any, cache: Cache, fn: str, layer: str = "batchnorm") -> np.ndarray:
    """``dout`` as an array of the forward input's shape; the cache must come from ``layer``'s forward."""
    forward = f"{layer}_forward"
    made_by = cache.get("layer") if isinstance(cache, dict) else None
    if made_by is not None and made_by != layer:
        raise ValueError(f"{fn} got a cache made by {made_by}_forward, not by {forward}. Pass the cache of "
                         f"{forward}; each backward pass needs the cache of its own forward.")
    if not isinstance(cache, dict) or "x" not in cache or "xhat" not in cache or "inv_std" not in cache:
        kind = type(cache).__name__
        raise ValueError(f"{fn} needs the cache returned by {forward} (a dict with 'x', 'xhat', 'inv_std', ...); "
                         f"got a {kind}. Call it as {fn}(dout, cache) with out, cache = {forward}(x, gamma, beta).")
    x = np.asarray(cache["x"])
    stats_shape = np.shape(cache["inv_std"])
    expected = {"batchnorm": [(x.shape[1],), (1, x.shape[1])],  # (1, D): a keepdims forward's statistics
                "layernorm": [(x.shape[0], 1)],
                "groupnorm": [(x.shape[0], cache.get("num_groups"), 1)]}[layer]
    if (made_by is not None and made_by != layer) or x.ndim != 2 or stats_shape not in expected:
        source = f"{made_by}_forward" if made_by else f"a forward with statistics of shape {stats_shape}"
        raise ValueError(
            f"{fn} got a cache made by {source}, not by {forward}: its statistics must be {_CACHE_STATS[layer]}. "
            f"Pass the cache of {forward}; each backward pass needs the cache of its own forward."
        )
    if isinstance(dout, (str, bytes)) or dout is None:
        raise ValueError(f"dout must be a NumPy array of shape {x.shape}, got {type(dout).__name__}.")
    arr = np.asarray(dout)
    if arr.shape != x.shape:
        raise ValueError(f"dout has shape {arr.shape} but the forward input had shape {x.shape}; they must match "
                         "(dout is ∂loss/∂out, one entry per output).")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"dout must hold floating-point numbers, got dtype {arr.dtype}; use dout.astype(np.float64).")
    if not np.all(np.isfinite(arr)):
        raise ValueError("dout holds non-finite values (NaN or inf).")
    return arr


# --------------------------------------------------------------------------- batch norm

def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      eps: float = 1e-5) -> tuple[np.ndarray, Cache]:
    """Batch normalization in training mode (Ioffe & Szegedy 2015, Algorithm 1).

    Each feature is normalized with the mean and the biased variance of the
    mini-batch, then scaled and shifted: y = γ·(x − μ_B)/√(σ_B² + ε) + β.

    Args:
        x: (N, D) mini-batch, N >= 2.
        gamma, beta: (D,) scale and shift.
        eps: added to the variance for numerical stability.

    Returns:
        out: (N, D), same dtype as x.
        cache: dict of every intermediate node (see the module docstring).

    Raises:
        ValueError: x not (N, D) with N >= 2 (4-D images: see ``spatial_batchnorm_forward``),
            x not floating point (use ``x.astype(np.float64)``), gamma/beta not (D,),
            non-finite values, eps < 0, or eps = 0 with a constant feature.
    """
    x = _as_float_2d(x)
    n, d = x.shape
    if n < 2:
        raise ValueError(
            f"batch norm in training mode needs at least 2 examples per batch; got x of shape {x.shape}. "
            "The variance of one value is 0 and every output would be β: use batchnorm_inference for single examples."
        )
    gamma = _as_vector(gamma, d, "gamma", x.dtype)
    beta = _as_vector(beta, d, "beta", x.dtype)
    eps = _check_eps(eps)
    mu = x.mean(axis=0)                      # node 1 mu: mini-batch mean
    xc = x - mu                              # node 2 xc: centre
    var = (xc ** 2).mean(axis=0)             # node 3 var: mean of the squares = biased variance
    _check_constant(var, eps, "feature")
    std = np.sqrt(var + eps)                 # node 4 std
    inv_std = 1.0 / std                      # node 5 inv_std
    xhat = xc * inv_std                      # node 6 xhat: normalize
    out = gamma * xhat + beta                # node 7 out: scale and shift
    cache = dict(x=x, mu=mu, xc=xc, var=var, std=std, inv_std=inv_std, xhat=xhat,
                 gamma=gamma, beta=beta, eps=eps, layer="batchnorm")
    return out, cache


#: The nodes of the staged backward pass, in the order it visits them (output to input). Each
#: name is the key of the node's value in the cache of ``batchnorm_forward`` and of its gradient
#: in the dict ``batchnorm_backward_nodes`` returns ("x", "gamma", "beta": the inputs).
BACKWARD_NODES: tuple[str, ...] = ("beta", "gamma", "xhat", "inv_std", "std", "var", "xc", "mu", "x")


def batchnorm_backward_nodes(dout: np.ndarray, cache: Cache) -> dict[str, np.ndarray]:
    """The staged backward pass of ``batchnorm_forward``, returning the gradient at every node.

    Walks the graph (module docstring; nodes named by their cache keys)
    x → mu → xc → var → std → inv_std → xhat → out backwards, one node per step,
    adding the contributions where a value feeds two nodes (xc feeds var and xhat;
    x feeds mu and xc). The gradients of the paper's equations (Ioffe & Szegedy 2015, §3):

        ∂ℓ/∂x̂ᵢ = ∂ℓ/∂yᵢ · γ
        ∂ℓ/∂σ² = Σᵢ ∂ℓ/∂x̂ᵢ · (xᵢ − μ) · (−½)(σ² + ε)^(−3/2)
        ∂ℓ/∂μ  = Σᵢ ∂ℓ/∂x̂ᵢ · (−1/√(σ²+ε)) + ∂ℓ/∂σ² · Σᵢ −2(xᵢ − μ)/m
        ∂ℓ/∂xᵢ = ∂ℓ/∂x̂ᵢ /√(σ²+ε) + ∂ℓ/∂σ² · 2(xᵢ − μ)/m + ∂ℓ/∂μ /m
        ∂ℓ/∂γ  = Σᵢ ∂ℓ/∂yᵢ · x̂ᵢ,   ∂ℓ/∂β = Σᵢ ∂ℓ/∂yᵢ

    Args:
        dout: (N, D) upstream gradient ∂ℓ/∂y.
        cache: from ``batchnorm_forward``.

    Returns:
        dict with the keys of ``BACKWARD_NODES``: the total derivative of ℓ with respect to
        that node's value, of the node's shape ((N, D) for x, xc, xhat; (D,) for the others).

    Raises:
        ValueError: ``cache`` is not the dict ``batchnorm_forward`` returns (e.g. another forward's);
            ``dout`` not of x's shape, not floating point, or holding NaN/inf.
        KeyError: a hand-made cache without a node this pass reads (e.g. ``gamma``).
        IndexError: a hand-made cache whose ``x`` has fewer than 2 dimensions.
    """
    dout = _check_dout(dout, cache, "batchnorm_backward_nodes")
    xc, std, inv_std, xhat, gamma = cache["xc"], cache["std"], cache["inv_std"], cache["xhat"], cache["gamma"]
    m = dout.shape[0]
    g: dict[str, np.ndarray] = {}
    # node 7 out = γ x̂ + β
    g["beta"] = dout.sum(axis=0)
    g["gamma"] = (dout * xhat).sum(axis=0)
    g["xhat"] = dout * gamma
    # node 6 xhat = xc · inv_std            (two inputs: xc and inv_std)
    g["inv_std"] = (g["xhat"] * xc).sum(axis=0)
    # node 5 inv_std = 1 / std
    g["std"] = -g["inv_std"] / std ** 2
    # node 4 std = √(var + ε)
    g["var"] = g["std"] * 0.5 / std          # = ∂ℓ/∂σ² of the paper
    # node 3 var = mean(xc²)                 (xc's second consumer: add both paths)
    g["xc"] = g["xhat"] * inv_std + 2.0 * xc * g["var"] / m
    # node 2 xc = x − mu                     (x goes straight through; mu is subtracted)
    g["mu"] = -g["xc"].sum(axis=0)           # = ∂ℓ/∂μ of the paper
    # node 1 mu = mean(x)                    (x's second consumer)
    g["x"] = g["xc"] + g["mu"] / m
    return g


def batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of ``batchnorm_forward``, staged: one step per node of the graph.

    The paper's equations (Ioffe & Szegedy 2015, §3) computed node by node; see
    ``batchnorm_backward_nodes``, which returns the gradient at every node.

    Args:
        dout: (N, D) upstream gradient ∂ℓ/∂y.
        cache: from ``batchnorm_forward``.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,).

    Raises:
        ValueError: ``cache`` is not the dict ``batchnorm_forward`` returns (e.g. another forward's);
            ``dout`` not of x's shape, not floating point, or holding NaN/inf.
        KeyError: a hand-made cache without a node this pass reads (e.g. ``gamma``).
        IndexError: a hand-made cache whose ``x`` has fewer than 2 dimensions.
    """
    g = batchnorm_backward_nodes(dout, cache)
    return g["x"], g["gamma"], g["beta"]


def batchnorm_backward_alt(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of ``batchnorm_forward`` in simplified closed form.

    Substituting ∂ℓ/∂σ² and ∂ℓ/∂μ into ∂ℓ/∂xᵢ and using Σᵢ x̂ᵢ = 0 gives

        ∂ℓ/∂xᵢ = γ / (m √(σ²+ε)) · ( m ∂ℓ/∂yᵢ − Σⱼ ∂ℓ/∂yⱼ − x̂ᵢ Σⱼ ∂ℓ/∂yⱼ x̂ⱼ )
               = γ / (m √(σ²+ε)) · ( m ∂ℓ/∂yᵢ − ∂ℓ/∂β − x̂ᵢ ∂ℓ/∂γ ),

    the upstream gradient with its mean and its component along x̂ removed.

    Args:
        dout: (N, D) upstream gradient ∂ℓ/∂y.
        cache: from ``batchnorm_forward``.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,).

    Raises:
        ValueError: ``cache`` is not the dict ``batchnorm_forward`` returns (e.g. another forward's);
            ``dout`` not of x's shape, not floating point, or holding NaN/inf.
        KeyError: a hand-made cache without a node this pass reads (e.g. ``gamma``).
        IndexError: a hand-made cache whose ``x`` has fewer than 2 dimensions.
    """
    dout = _check_dout(dout, cache, "batchnorm_backward_alt")
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    m = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def batchnorm_inference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                        running_var: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Batch normalization at inference (Ioffe & Szegedy 2015, Algorithm 2).

    y = γ·(x − E[x])/√(Var[x] + ε) + β with the population estimates E[x] and
    Var[x] (running averages) in place of batch statistics: a fixed affine map
    per feature, so any N >= 1 works and each example's output is independent
    of the rest of the batch.

    Args:
        x: (N, D). gamma, beta, running_mean, running_var: (D,).

    Returns:
        out: (N, D).

    Raises:
        ValueError: x not a 2-D floating-point array; gamma, beta, running_mean or running_var not (D,)
            arrays of numbers; NaN/inf values; a negative running_var; eps not a number >= 0; eps = 0
            with a zero running_var.
    """
    x = _as_float_2d(x)
    d = x.shape[1]
    gamma = _as_vector(gamma, d, "gamma", x.dtype)
    beta = _as_vector(beta, d, "beta", x.dtype)
    mean = _as_vector(running_mean, d, "running_mean", x.dtype)
    var = _as_vector(running_var, d, "running_var", x.dtype)
    if np.any(var < 0):
        raise ValueError("running_var must be >= 0 (it is a variance); did you pass a standard deviation "
                         "or a mean in its place?")
    eps = _check_eps(eps)
    _check_constant(var, eps, "feature")
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


# --------------------------------------------------------------------------- running statistics

def update_running_stats(running_mean: np.ndarray, running_var: np.ndarray, batch_mean: np.ndarray,
                         batch_var: np.ndarray, m: int, momentum: float = 0.1,
                         unbiased: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One step of the exponential moving average of the batch statistics (torch's rule).

        running_mean ← (1 − momentum) · running_mean + momentum · μ_B
        running_var  ← (1 − momentum) · running_var  + momentum · m/(m−1) · σ_B²

    The factor m/(m−1) turns the biased batch variance σ_B² (the one used to
    normalize) into the unbiased estimate Algorithm 2 asks for.

    Args:
        running_mean, running_var: (D,) current averages (not modified).
        batch_mean, batch_var: (D,) the batch's mean and biased variance (cache["mu"], cache["var"]).
        m: examples in the batch (m >= 2 when ``unbiased``).
        momentum: weight of the new batch, in (0, 1].
        unbiased: apply the m/(m−1) correction (True, as torch and the paper).

    Returns:
        new_mean, new_var: (D,).

    Raises:
        ValueError: ``momentum`` not a number in (0, 1]; ``m`` not a positive int, or m < 2 with
            ``unbiased``; the four statistics not 1-D arrays of numbers of one length D; a negative variance.
    """
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)) or not 0 < momentum <= 1:
        raise ValueError(f"momentum must be a number in (0, 1], the weight of the new batch (torch's convention), "
                         f"got {momentum!r}. CS231n's momentum (the weight of the old value) is 1 - this one.")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be the number of examples in the batch, a positive int, got {m!r}.")
    if unbiased and m < 2:
        raise ValueError(f"the unbiased variance needs m >= 2 examples, got m={m}; pass unbiased=False for m = 1.")
    arrays = {}
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("batch_mean", batch_mean), ("batch_var", batch_var)):
        arr = None if isinstance(value, (str, bytes)) or value is None else np.asarray(value)
        if arr is None or arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.floating)
                                                 or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must be a (D,) array of numbers, one entry per feature; got "
                             f"{type(value).__name__} of shape {np.shape(value)}.")
        arrays[name] = arr
    d = len(arrays["running_mean"])
    for name, arr in arrays.items():
        if arr.shape != (d,):
            raise ValueError(f"{name} has shape {arr.shape} but running_mean has shape ({d},); all four must match.")
    for name in ("running_var", "batch_var"):
        if np.any(arrays[name] < 0):
            raise ValueError(f"{name} must be >= 0 (it is a variance); did you pass a standard deviation "
                             "or a mean in its place?")
    factor = m / (m - 1) if unbiased else 1.0
    new_mean = (1 - momentum) * arrays["running_mean"] + momentum * arrays["batch_mean"]
    new_var = (1 - momentum) * arrays["running_var"] + momentum * factor * arrays["batch_var"]
    return new_mean, new_var


@dataclass
class RunningStats:
    """Population statistics for inference, estimated from mini-batches during training.

    Three ways to average, as a student can compare them:

    - ``momentum=0.1`` (default): torch's exponential moving average, started at
      mean 0 and variance 1.
    - ``momentum=0.1, bias_correction=True``: the same average started at 0 for
      both and divided by 1 − (1 − momentum)ᵗ after t updates (Adam's bias
      correction, Kingma & Ba 2015, §3): unbiased from the first step on.
    - ``momentum=None``: the cumulative average of all batches (torch's
      ``momentum=None``), each batch weighted equally.

    Attributes:
        num_features: D.
        mean, var: (D,) the current estimates (bias-corrected when asked for).
        steps: number of updates so far.

    Raises:
        ValueError: ``num_features`` < 1, ``momentum`` outside (0, 1], or ``bias_correction`` with
            ``momentum=None``.
        TypeError: ``num_features`` not an int, or ``momentum`` neither a number nor None.
    """

    num_features: int
    momentum: float | None = 0.1
    unbiased: bool = True
    bias_correction: bool = False
    steps: int = 0
    _mean: np.ndarray = field(init=False, repr=False)
    _var: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {self.num_features}.")
        if self.momentum is not None and not 0 < self.momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1] or None, got {self.momentum}.")
        if self.bias_correction and self.momentum is None:
            raise ValueError("bias_correction applies to the exponential average; momentum=None is already unbiased.")
        start_var = 0.0 if self.bias_correction else 1.0
        self._mean = np.zeros(self.num_features)
        self._var = np.full(self.num_features, start_var)

    def update(self, x: np.ndarray) -> "RunningStats":
        """Fold in the statistics of one mini-batch ``x`` of shape (N, D); returns self.

        Raises:
            ValueError: ``x`` not a 2-D floating-point array of finite values, its D not ``num_features``,
                or N < 2 with ``unbiased``.
        """
        x = _as_float_2d(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"x has {x.shape[1]} features, these running statistics track {self.num_features}.")
        self.steps += 1
        f = 1.0 / self.steps if self.momentum is None else self.momentum
        self._mean, self._var = update_running_stats(
            self._mean, self._var, x.mean(axis=0), x.var(axis=0), len(x), momentum=f, unbiased=self.unbiased)
        return self

    @property
    def correction(self) -> float:
        """The divisor 1 − (1 − momentum)ᵗ of the bias correction (1 when it is off)."""
        if not self.bias_correction or self.steps == 0:
            return 1.0
        return 1.0 - (1.0 - self.momentum) ** self.steps  # type: ignore[operator]

    @property
    def mean(self) -> np.ndarray:
        """(D,) estimate of the population mean."""
        return self._mean / self.correction

    @property
    def var(self) -> np.ndarray:
        """(D,) estimate of the population variance."""
        return self._var / self.correction


# --------------------------------------------------------------------------- layer norm

def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      eps: float = 1e-5) -> tuple[np.ndarray, Cache]:
    """Layer normalization (Ba et al. 2016): normalize each example over its D features.

    Same computation as batch norm with the roles of N and D swapped for the
    statistics (mean and biased variance of each row), and the same per-feature
    γ and β. Training and inference are identical; any N >= 1 works.

    Args:
        x: (N, D). gamma, beta: (D,).

    Returns:
        out: (N, D); cache: dict as ``batchnorm_forward``'s, statistics of shape (N, 1).

    Raises:
        ValueError: x not a 2-D floating-point array; gamma/beta not (D,) arrays of numbers; NaN/inf
            values; eps not a number >= 0; eps = 0 with a constant example.
    """
    x = _as_float_2d(x)
    d = x.shape[1]
    gamma = _as_vector(gamma, d, "gamma", x.dtype)
    beta = _as_vector(beta, d, "beta", x.dtype)
    eps = _check_eps(eps)
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(axis=1, keepdims=True)
    _check_constant(var[:, 0], eps, "example")
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    xhat = xc * inv_std
    out = gamma * xhat + beta
    cache = dict(x=x, mu=mu, xc=xc, var=var, std=std, inv_std=inv_std, xhat=xhat,
                 gamma=gamma, beta=beta, eps=eps, layer="layernorm")
    return out, cache


def layernorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of ``layernorm_forward`` (closed form, per example over D features).

        ∂ℓ/∂x̂ = ∂ℓ/∂y · γ,  ∂ℓ/∂xᵢ = (1/(D√(σᵢ²+ε))) (D ∂ℓ/∂x̂ᵢ − Σ_d ∂ℓ/∂x̂ᵢ − x̂ᵢ Σ_d ∂ℓ/∂x̂ᵢ x̂ᵢ)

    Args:
        dout: (N, D). cache: from ``layernorm_forward``.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,).

    Raises:
        ValueError: ``cache`` is not the dict ``layernorm_forward`` returns (e.g. another forward's);
            ``dout`` not of x's shape, not floating point, or holding NaN/inf.
        KeyError: a hand-made cache without a node this pass reads (e.g. ``gamma``).
        IndexError: a hand-made cache whose ``x`` has fewer than 2 dimensions.
    """
    dout = _check_dout(dout, cache, "layernorm_backward", layer="layernorm")
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    d = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = (inv_std / d) * (d * dxhat - dxhat.sum(axis=1, keepdims=True)
                          - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- spatial batch norm (images)

def _channels_last_2d(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N·H·W, C): every pixel of every image is one sample of its channel."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _channels_first_4d(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``_channels_last_2d`` for an (N, C, H, W) ``shape``."""
    n, c, h, w = shape
    return np.ascontiguousarray(y.reshape(n, h, w, c).transpose(0, 3, 1, 2))


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                              eps: float = 1e-5) -> tuple[np.ndarray, Cache]:
    """Batch normalization of conv activations in training mode (Ioffe & Szegedy 2015, §3.2).

    For convolutional layers "different elements of the same feature map, at
    different locations, are normalized in the same way" (§3.2): each channel c
    is normalized with the mean and biased variance of its m = N·H·W values,
    y = γ_c·(x − μ_c)/√(σ_c² + ε) + β_c, as ``nn.BatchNorm2d`` does in training
    mode. Computed as ``batchnorm_forward`` on the channels-last flattening
    x.transpose(0, 2, 3, 1).reshape(-1, C) (CS231n's spatial batch norm).

    Args:
        x: (N, C, H, W) with N·H·W >= 2.
        gamma, beta: (C,) per-channel scale and shift.
        eps: added to the variance.

    Returns:
        out: (N, C, H, W).
        cache: dict with ``layer="spatial_batchnorm"``, ``x`` and ``bn`` (the cache of
            ``batchnorm_forward`` on the (N·H·W, C) flattening).

    Raises:
        ValueError: as ``batchnorm_forward``; x must be 4-D.
    """
    x = _as_float_array(x, "x", 4, "(N, C, H, W) (N images, C channels)")
    flat = _channels_last_2d(x)
    if len(flat) < 2:
        raise ValueError(f"spatial batch norm in training mode needs N·H·W >= 2 values per channel; got x of "
                         f"shape {x.shape}. Use a larger batch or batchnorm_inference with running statistics.")
    out, bn_cache = batchnorm_forward(flat, gamma, beta, eps)
    return _channels_first_4d(out, x.shape), dict(layer="spatial_batchnorm", x=x, bn=bn_cache)


def spatial_batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of ``spatial_batchnorm_forward``: ``batchnorm_backward_alt`` on the flattening.

    Args:
        dout: (N, C, H, W) upstream gradient ∂ℓ/∂y.
        cache: from ``spatial_batchnorm_forward``.

    Returns:
        dx (N, C, H, W), dgamma (C,), dbeta (C,).

    Raises:
        ValueError: ``cache`` is not the dict ``spatial_batchnorm_forward`` returns; ``dout`` not a 4-D
            floating-point array of x's shape, or holding NaN/inf.
    """
    if not isinstance(cache, dict) or cache.get("layer") != "spatial_batchnorm" or "bn" not in cache:
        made = cache.get("layer", "another forward") if isinstance(cache, dict) else type(cache).__name__
        raise ValueError(f"spatial_batchnorm_backward needs the cache of spatial_batchnorm_forward, got one made by "
                         f"{made}. Call it with out, cache = spatial_batchnorm_forward(x, gamma, beta).")
    x = cache["x"]
    arr = _as_float_array(dout, "dout", 4, f"{x.shape} (the shape of x)")
    if arr.shape != x.shape:
        raise ValueError(f"dout has shape {arr.shape} but the forward input had shape {x.shape}; they must match.")
    dx, dgamma, dbeta = batchnorm_backward_alt(_channels_last_2d(arr), cache["bn"])
    return _channels_first_4d(dx, x.shape), dgamma, dbeta


# --------------------------------------------------------------------------- group norm

def groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, num_groups: int,
                      eps: float = 1e-5) -> tuple[np.ndarray, Cache]:
    """Group normalization (Wu & He 2018, Eq. 1 with S_i of §3.1) for (N, D) input.

    The D features of each example are split into G = ``num_groups`` groups of
    K = D/G consecutive features; each group is normalized by its own mean and
    biased variance, then the per-feature γ, β are applied. G = 1 is layer norm;
    G = D normalizes every feature by itself (x̂ = 0 for (N, D) input: one value per group).

    Args:
        x: (N, D). gamma, beta: (D,). num_groups: G, a divisor of D. eps: added to the variance.

    Returns:
        out: (N, D); cache: dict with the keys of ``layernorm_forward``'s, statistics of
        shape (N, G, 1), ``xhat`` of shape (N, D), and ``num_groups``.

    Raises:
        ValueError: G not a positive divisor of D (or a string that is not a number); as
            ``layernorm_forward`` for x, gamma, beta and eps (eps = 0 with a constant group).
        TypeError: ``num_groups`` not a number (e.g. None).
    """
    x = _as_float_2d(x)
    n, d = x.shape
    g = int(num_groups)
    if g < 1 or d % g:
        raise ValueError(f"num_groups={num_groups} must be a positive divisor of the {d} features of x")
    gamma = _as_vector(gamma, d, "gamma", x.dtype)
    beta = _as_vector(beta, d, "beta", x.dtype)
    eps = _check_eps(eps)
    xg = x.reshape(n, g, d // g)
    mu = xg.mean(axis=2, keepdims=True)
    xc = xg - mu
    var = (xc ** 2).mean(axis=2, keepdims=True)
    _check_constant(var[:, :, 0], eps, "(example, group)")
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    xhat = (xc * inv_std).reshape(n, d)
    out = gamma * xhat + beta
    cache = dict(x=x, mu=mu, xc=xc.reshape(n, d), var=var, std=std, inv_std=inv_std, xhat=xhat,
                 gamma=gamma, beta=beta, eps=eps, num_groups=g, layer="groupnorm")
    return out, cache


def groupnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of ``groupnorm_forward``: layer norm's closed form within each group.

        ∂ℓ/∂x̂ = ∂ℓ/∂y · γ,  ∂ℓ/∂x_k = (1/(K√(σ_g²+ε))) (K ∂ℓ/∂x̂_k − Σ_{j∈g} ∂ℓ/∂x̂_j − x̂_k Σ_{j∈g} ∂ℓ/∂x̂_j x̂_j)

    for feature k in group g of K = D/G features.

    Args:
        dout: (N, D). cache: from ``groupnorm_forward``.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,).

    Raises:
        ValueError: ``cache`` is not the dict ``groupnorm_forward`` returns (e.g. another forward's);
            ``dout`` not of x's shape, not floating point, or holding NaN/inf.
        KeyError: a hand-made cache without a node this pass reads (e.g. ``gamma``).
        IndexError: a hand-made cache whose ``x`` has fewer than 2 dimensions.
    """
    dout = _check_dout(dout, cache, "groupnorm_backward", layer="groupnorm")
    xhat, inv_std, gamma, g = cache["xhat"], cache["inv_std"], cache["gamma"], cache["num_groups"]
    n, d = dout.shape
    k = d // g
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = (dout * gamma).reshape(n, g, k)
    xh = xhat.reshape(n, g, k)
    dx = (inv_std / k) * (k * dxhat - dxhat.sum(axis=2, keepdims=True)
                          - xh * (dxhat * xh).sum(axis=2, keepdims=True))
    return dx.reshape(n, d), dgamma, dbeta
