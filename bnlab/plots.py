"""The course's figure style and its recurring figure types.

Notebooks call these instead of restyling: one colour per method across the
course, curves with a min–max band over seeds, percentile bands, heatmaps.
Every function draws on an ``Axes`` you pass (or a new one) and returns it.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from bnlab.runtime import is_quick

__all__ = ["COLORS", "color", "use_style", "new_axes", "curves", "band", "percentile_bands",
           "heatmap", "image_grid", "layer_bands", "save_figure", "FIGURE_DIR"]

# One fixed colour per method, used by every notebook.
COLORS: dict[str, str] = {
    "plain": "#555555",
    "bn": "#1f77b4",
    "noisy_bn": "#d62728",
    "noise": "#ff7f0e",
    "ln": "#2ca02c",
    "gn": "#17becf",
    "l1": "#9467bd",
    "l2": "#8c564b",
    "linf": "#e377c2",
    "torch_bn": "#aec7e8",
    "lsuv": "#bcbd22",  # the well-scaled start: plain net after models.lsuv
    # the BN variants of notebook 09 (bnlab.layers.variants)
    "bn_detached": "#e7298a",
    "bn_frozen": "#a6761d",
    "bn_reestimated": "#e6ab02",
    "bn_mean": "#7570b3",
    "bn_scale": "#1b9e77",
}
_ALIASES = {"no bn": "plain", "none": "plain", "baseline": "plain", "batchnorm": "bn", "with bn": "bn",
            "noisy bn": "noisy_bn", "layernorm": "ln", "groupnorm": "gn", "ℓ1": "l1", "ℓ2": "l2", "ℓ∞": "linf",
            "well-scaled start": "lsuv", "well-scaled": "lsuv", "plain + lsuv": "lsuv",
            "detached": "bn_detached", "frozen": "bn_frozen", "re-estimated": "bn_reestimated",
            "mean-only": "bn_mean", "scale-only": "bn_scale"}

FIGURE_DIR = Path(__file__).resolve().parent.parent / "figures"

_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
}


def use_style() -> None:
    """Apply the course's matplotlib style (called on import of bnlab.plots)."""
    mpl.rcParams.update(_STYLE)


use_style()


def color(method: str) -> str:
    """The course colour for a method name ("plain", "bn", "noisy_bn", "ln", "l1", ...)."""
    key = method.lower().strip()
    # "plain, init std 0.01" or "BN (lr 0.5)" take the colour of their method
    for candidate in (key, key.split(",")[0].split("(")[0].strip()):
        candidate = _ALIASES.get(candidate, candidate).replace(" ", "_")
        if candidate in COLORS:
            return COLORS[candidate]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return palette[zlib.crc32(key.encode()) % len(palette)]  # stable across runs


def new_axes(ax: plt.Axes | None = None, **subplot_kw) -> plt.Axes:
    """``ax`` itself, or the axes of a new figure in the course style."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(**subplot_kw)
    return ax


def band(ax: plt.Axes, x: np.ndarray, ys: np.ndarray, label: str | None = None, c: str | None = None,
         center: str = "median", alpha: float = 0.2, **line_kw) -> plt.Axes:
    """One line (median or mean over rows) with a shaded min–max band.

    Args:
        x: (T,) positions. ys: (S, T) one row per seed (or (T,) for a single run).
    """
    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    mid = np.nanmedian(ys, axis=0) if center == "median" else np.nanmean(ys, axis=0)
    c = c or (color(label) if label else None)
    ax.plot(x, mid, color=c, label=label, **line_kw)
    if ys.shape[0] > 1:
        ax.fill_between(x, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=c, alpha=alpha, linewidth=0)
    return ax


def curves(runs: Mapping[str, Sequence], metric: str = "test_acc", ax: plt.Axes | None = None,
           colors: Mapping[str, str] | None = None, title: str | None = None, ylabel: str | None = None,
           xlabel: str = "training step", logy: bool = False,
           styles: Mapping[str, str] | None = None) -> plt.Axes:
    """Plot a metric of several methods over training, each a line with a min–max band over seeds.

    Args:
        runs: label → list of ``History`` (one per seed). Labels pick the colour
            ("plain", "BN", "noisy BN", ...) unless ``colors`` says otherwise.
        metric: "test_acc", "test_loss", "train_acc" (at evaluation steps) or
            "train_loss" (smoothed over windows of ~1% of training).
        colors, styles: label → colour / line style, overriding the course defaults
            (e.g. ``styles={"BN": "--"}`` to tell apart two methods that overlap).
    """
    ax = new_axes(ax)
    for label, hists in runs.items():
        hists = list(hists)
        if metric == "train_loss":
            window = max(1, min(len(h.train_loss) for h in hists) // 100)
            pairs = [h.smoothed_train_loss(window) for h in hists]
            n = min(len(p[0]) for p in pairs)
            x, ys = pairs[0][0][:n], np.stack([p[1][:n] for p in pairs])
        else:
            n = min(len(h.steps) for h in hists)
            x = hists[0].steps[:n]
            ys = np.stack([getattr(h, metric)[:n] for h in hists])
        c = (colors or {}).get(label) or color(label)
        band(ax, x, ys, label=label, c=c, linestyle=(styles or {}).get(label, "-"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or {"test_acc": "test accuracy", "test_loss": "test loss (cross-entropy)",
                             "train_acc": "train accuracy", "train_loss": "train loss (cross-entropy)"}.get(metric, metric))
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def percentile_bands(steps: np.ndarray, percentiles: np.ndarray, ax: plt.Axes | None = None,
                     labels: Sequence[str] = ("15th", "50th", "85th"), c: str = "#1f77b4",
                     title: str | None = None, ylabel: str = "input to the sigmoid",
                     xlabel: str = "training step") -> plt.Axes:
    """Draw percentiles of a distribution over training (Ioffe & Szegedy Fig. 1b,c style).

    Args:
        steps: (T,). percentiles: (T, P) one column per percentile, or (S, T, P)
            over seeds (each line is then the median over seeds with a min–max band).
    """
    ax = new_axes(ax)
    p = np.asarray(percentiles, dtype=float)
    if p.ndim == 2:
        p = p[None]
    styles = ["--", "-", ":"] if p.shape[-1] == 3 else ["-"] * p.shape[-1]
    for j in range(p.shape[-1]):
        band(ax, steps, p[:, :, j], label=labels[j] if j < len(labels) else None, c=c,
             linestyle=styles[j])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(title="percentile")
    return ax


def heatmap(values: np.ndarray, xticklabels: Sequence, yticklabels: Sequence, ax: plt.Axes | None = None,
            xlabel: str = "", ylabel: str = "", title: str | None = None, cbar_label: str = "",
            fmt: str = "{:.2f}", vmin: float | None = None, vmax: float | None = None,
            cmap: str = "viridis", mask: np.ndarray | None = None, mask_text: str = "div") -> plt.Axes:
    """An annotated grid (e.g. accuracy over learning rate × init scale).

    Args:
        values: (R, C). mask: (R, C) bool, cells shown as ``mask_text`` (e.g. diverged runs).

    Raises:
        ValueError: ``values`` not numbers; ``xticklabels``/``yticklabels`` not C/R labels; a ``fmt``
            that cannot format a float; an unknown ``cmap``.
        TypeError: ``values`` not 2-D.
        numpy.ma.MaskError: ``mask`` not of the shape of ``values``.
    """
    ax = new_axes(ax)
    v = np.asarray(values, dtype=float)
    shown = np.ma.masked_array(v, mask=mask if mask is not None else ~np.isfinite(v))
    colormap = plt.get_cmap(cmap).with_extremes(bad="#dddddd")   # masked cells: light grey, labelled in black
    im = ax.imshow(shown, cmap=colormap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(v.shape[1]), [str(t) for t in xticklabels])
    ax.set_yticks(range(v.shape[0]), [str(t) for t in yticklabels])
    ax.grid(False)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            text = mask_text if np.ma.is_masked(shown[i, j]) else fmt.format(v[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="black" if np.ma.is_masked(shown[i, j]) else "white" if (vmax is not None and v[i, j] < (vmin or 0) + 0.5 * ((vmax or 1) - (vmin or 0))) else "black")
    ax.figure.colorbar(im, ax=ax, label=cbar_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def layer_bands(series: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[str]]], layers: Sequence[int],
                ylabel: str, title: str, logy: bool = True, xmax: float | None = None,
                styles: Mapping[str, str] | None = None, xlabel: str = "training step") -> plt.Figure:
    """One panel per layer, each method a line with a min–max band over seeds (e.g. ICS per layer).

    Args:
        series: method label → (steps (T,), values (S, T, K), K layer names), as
            returned by ``bnlab.probes.ics_series``. Labels pick the colour.
        layers: indices k into the K layers, one panel each.
        styles: label → line style (e.g. ``{"BN": "--"}``).

    Returns:
        the figure (panels share the y axis; the legend is on the first panel).

    Raises:
        ValueError: no method in ``series`` or no layer index; a ``series`` entry that is not a triple;
            ``values`` not (S, T, K) or a layer index outside them; ``steps`` not of length T.
        IndexError: a layer index beyond the layer names, or a float index.
        TypeError: a layer index that is not a number.
    """
    if len(series) == 0 or len(layers) == 0:
        raise ValueError("need at least one method in series and one layer index")
    fig, axes = plt.subplots(1, len(layers), figsize=(4.6 * len(layers), 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, k in zip(axes, layers):
        for label, (steps, values, names) in series.items():
            values = np.asarray(values, dtype=float)
            if values.ndim != 3 or not -values.shape[2] <= k < values.shape[2]:
                raise ValueError(f"{label}: values must be (S, T, K) with layer {k} in range, got {values.shape}")
            band(ax, np.asarray(steps), values[:, :, k], label=label, c=color(label),
                 linestyle=(styles or {}).get(label, "-"))
        ax.set_title(f"layer {names[k]}")
        ax.set_xlabel(xlabel)
        if logy:
            ax.set_yscale("log")
        if xmax is not None:
            ax.set_xlim(0, xmax)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    fig.suptitle(title, y=1.03)
    return fig


def image_grid(images, labels, classes: Sequence[str], per_class: int = 8, title: str | None = None) -> plt.Figure:
    """A grid with one row per class showing its first ``per_class`` images.

    Args:
        images: (N, 1, H, W) or (N, H, W) tensor/array in [0, 1]. labels: (N,) class indices.
    """
    images = np.asarray(images).reshape(len(images), *np.asarray(images).shape[-2:])
    labels = np.asarray(labels)
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.6, len(classes) * 0.62), dpi=80)
    for k, name in enumerate(classes):
        idx = np.flatnonzero(labels == k)[:per_class]
        for j in range(per_class):
            ax = axes[k, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]], cmap="gray_r", vmin=0, vmax=1)
        axes[k, 0].text(-4, 14, name, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title, y=0.93)
    fig.subplots_adjust(left=0.2, wspace=0.05, hspace=0.05)
    return fig


def save_figure(fig: plt.Figure, name: str, folder: str | os.PathLike | None = None,
                force: bool = False) -> Path | None:
    """Save ``fig`` as ``figures/<name>.png`` for slides, in full mode only (or with ``force``).

    Returns the path written, or None in quick mode (test runs never touch figures/).

    Raises:
        ValueError: ``BNLAB_QUICK`` holds a value quick mode does not know (see ``runtime.is_quick``).
        OSError: ``folder`` cannot be created (e.g. a file has its name) or the image cannot be written.
    """
    if is_quick() and not force:
        return None
    out = Path(folder) if folder is not None else FIGURE_DIR
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path)
    return path
