"""The course's plotting helpers: panels, lines, styles."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnlab import plots  # noqa: E402


def _series(offset: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    steps = np.arange(5) * 10
    values = offset + np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3) + 1.0  # 2 seeds, 5 steps, 3 layers
    return steps, values, ["fc1", "fc2", "out"]


def test_layer_bands_draws_one_panel_per_layer_with_the_median_over_seeds():
    fig = plots.layer_bands({"plain": _series(0.0), "BN": _series(100.0)}, layers=(1, 2), ylabel="relative ICS",
                            title="ICS", styles={"BN": "--"}, xmax=30)
    axes = fig.axes
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["layer fc2", "layer out"]
    assert axes[0].get_yscale() == "log" and axes[0].get_xlim() == (0, 30)
    lines = {line.get_label(): line for line in axes[1].get_lines()}
    assert set(lines) == {"plain", "BN"}
    assert lines["BN"].get_linestyle() == "--" and lines["plain"].get_linestyle() == "-"
    assert lines["plain"].get_color() == plots.color("plain") and lines["BN"].get_color() == plots.color("bn")
    np.testing.assert_allclose(lines["plain"].get_ydata(), np.median(_series(0.0)[1][:, :, 2], axis=0))
    assert axes[0].get_ylabel() == "relative ICS" and axes[0].get_legend() is not None
    plt.close(fig)


def test_layer_bands_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        plots.layer_bands({}, layers=(0,), ylabel="y", title="t")
    with pytest.raises(ValueError, match="in range"):
        plots.layer_bands({"plain": _series(0.0)}, layers=(5,), ylabel="y", title="t")
    plt.close("all")


def test_method_colours_are_fixed_and_found_in_longer_labels():
    assert plots.color("plain") == plots.color("plain, init std 0.01") == plots.color("no BN")
    assert plots.color("BN") == plots.color("BN (lr 0.5)") == plots.COLORS["bn"]
    assert plots.color("noisy BN") == plots.COLORS["noisy_bn"] != plots.color("BN")
    assert plots.color("well-scaled start") == plots.color("plain + LSUV") == plots.COLORS["lsuv"] != plots.color("plain")
    assert plots.color("some new method") == plots.color("some new method")  # stable, not random


def test_curves_draws_a_band_per_method(small_fmnist):
    from bnlab import models, train
    runs = {label: train.fit_seeds(lambda: models.mlp(widths=(16,), norm=norm), small_fmnist, [0, 1],
                                   steps=20, lr=0.1, eval_every=10, progress=False)
            for label, norm in (("plain", None), ("BN", "bn"))}
    ax = plots.curves(runs, "test_acc", title="t", styles={"BN": "--"})
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"plain", "BN"} and lines["BN"].get_linestyle() == "--"
    assert len(ax.collections) == 2  # one min-max band per method
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "test accuracy"
    plt.close("all")


def test_heatmap_labels_masked_cells_legibly():
    import matplotlib.pyplot as plt
    from bnlab import plots
    ax = plots.heatmap(np.array([[0.2, 0.8], [0.5, np.nan]]), ["a", "b"], ["x", "y"], vmin=0, vmax=1,
                       mask=np.array([[True, False], [False, False]]), mask_text="div")
    texts = {t.get_text(): t.get_color() for t in ax.texts}
    assert texts["div"] == "black" and texts["0.80"] == "black" and texts["0.50"] == "black"
    assert tuple(ax.images[0].cmap.get_bad()[:3]) != (1.0, 1.0, 1.0)    # masked cells are not left white
    plt.close(ax.figure)
