"""Internal covariate shift (Santurkar et al. 2018, Def. 2.1) as a probe."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from bnlab.models import deep_linear, dln_data, dln_loss, mlp
from bnlab.probes import ics, ics_probe, ics_series, jitter, layer_groups, stack_ics
from bnlab.train import fit


def _tiny(norm: str | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return mlp((8, 6), activation="tanh", norm=norm, init_std=0.5, in_features=5, num_classes=3)


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_layer_groups_follow_the_paper():
    plain = layer_groups(_tiny())
    assert [n for n, _ in plain] == ["fc1", "fc2", "out"]
    assert [len(ps) for _, ps in plain] == [2, 2, 2]  # weight + bias
    bn = layer_groups(_tiny("bn"))
    assert [n for n, _ in bn] == ["fc1", "fc2", "out"]
    net = _tiny("bn")
    got = layer_groups(net)[0][1]
    assert got[0] is net.fc1.weight and got[1] is net.norm1.weight and got[2] is net.norm1.bias


def test_ics_matches_definition_2_1_by_hand():
    model = _tiny()
    x, y = _batch()
    lr = 0.3
    res = ics(model, (x, y), lr)
    params = [model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias, model.out.weight, model.out.bias]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
    clone = _tiny()  # same seed → same weights
    # G' of the output layer: fc1 and fc2 take their SGD step, out stays
    with torch.no_grad():
        for name in ("fc1", "fc2"):
            layer = getattr(clone, name)
            i = ["fc1", "fc2"].index(name) * 2
            layer.weight -= lr * grads[i]
            layer.bias -= lr * grads[i + 1]
    g_out = torch.cat([g.flatten() for g in grads[4:]])
    gp = torch.autograd.grad(nn.functional.cross_entropy(clone(x), y), [clone.out.weight, clone.out.bias])
    gp_out = torch.cat([g.flatten() for g in gp])
    assert res.layers == ["fc1", "fc2", "out"]
    np.testing.assert_allclose(res.ics[2], float((g_out - gp_out).norm()), rtol=1e-5)
    np.testing.assert_allclose(res.relative[2], float((g_out - gp_out).norm() / g_out.norm()), rtol=1e-5)
    np.testing.assert_allclose(res.cos[2], float(g_out @ gp_out / (g_out.norm() * gp_out.norm())), rtol=1e-5)
    np.testing.assert_allclose(res.grad_norm[2], float(g_out.norm()), rtol=1e-6)
    # layer 1 has nothing below it: no shift
    assert res.ics[0] == 0.0 and res.cos[0] == pytest.approx(1.0)
    # the shift vanishes with the step size (G' → G)
    small = ics(model, (x, y), 1e-6)
    assert np.all(small.relative < 1e-3) and np.all(small.cos > 0.999)
    assert np.all(res.relative[1:] > 10 * small.relative[1:])


@pytest.mark.parametrize("norm", [None, "bn", "noisy_bn", "noise"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("with_grads", [False, True])
def test_ics_leaves_everything_bit_identical(norm, mode, with_grads):
    model = _tiny(norm)
    x, y = _batch()
    model(x)  # running statistics away from their initial values
    if with_grads:
        nn.functional.cross_entropy(model(x), y).backward()
    model.train(mode == "train")
    before = model_state(model)
    res = ics(model, (x, y), 0.5)
    assert_same_state(before, model_state(model))
    assert np.all(np.isfinite(res.ics)) and np.all(res.ics[1:] > 0)


def test_bn_is_probed_with_batch_statistics():
    model = _tiny("bn")
    x, y = _batch()
    model.eval()
    train_stats = ics(model, (x, y), 0.5)
    running_stats = ics(model, (x, y), 0.5, train_mode=False)
    assert not np.allclose(train_stats.grad_norm, running_stats.grad_norm)
    model.train()
    np.testing.assert_array_equal(ics(model, (x, y), 0.5).ics, train_stats.ics)


def test_noise_is_the_same_in_every_pass():
    """With fixed noise, G' → G as lr → 0 even in a noisy net (fresh noise would not)."""
    model = _tiny("noisy_bn")
    res = ics(model, _batch(), 1e-7)
    assert np.all(res.relative < 1e-3)


@pytest.mark.parametrize("norm", [None, "noisy_bn"])
def test_probe_does_not_change_the_training_run(norm):
    g = torch.Generator().manual_seed(2)
    data = (torch.randn(300, 5, generator=g), torch.randint(0, 3, (300,), generator=g),
            torch.randn(50, 5, generator=g), torch.randint(0, 3, (50,), generator=g))

    def make() -> nn.Sequential:
        return mlp((8, 6), norm=norm, init_std=0.5, in_features=5, num_classes=3)

    probe = ics_probe(every=7)
    with_probe = fit(make, data, steps=40, lr=0.2, batch_size=20, seed=3, probes={"ics": probe}, progress=False)
    without = fit(make, data, steps=40, lr=0.2, batch_size=20, seed=3, progress=False)
    np.testing.assert_array_equal(with_probe.train_loss, without.train_loss)
    np.testing.assert_array_equal(with_probe.test_acc, without.test_acc)
    stacked = stack_ics(with_probe.probes["ics"])
    assert list(stacked["step"]) == [0, 7, 14, 21, 28, 35, 40]
    assert stacked["relative"].shape == (7, 3) and stacked["layers"] == ["fc1", "fc2", "out"]


def test_ics_on_the_deep_linear_network():
    x, y, _ = dln_data(n=200)
    torch.manual_seed(0)
    res = ics(deep_linear(depth=6), (x, y), 1e-4, loss_fn=dln_loss)
    assert res.layers == [f"fc{k}" for k in range(1, 7)]
    assert np.all(res.cos > 0.9)  # tiny steps in a linear net: G' ≈ G
    torch.manual_seed(0)
    with_bn = ics(deep_linear(depth=6, bn=True), (x, y), 1e-4, loss_fn=dln_loss)
    assert with_bn.layers == res.layers


def test_bad_arguments():
    with pytest.raises(ValueError, match="lr"):
        ics(_tiny(), _batch(), 0.0)
    with pytest.raises(ValueError, match="every"):
        ics_probe(every=0)
    with pytest.raises(ValueError, match="no ICS records"):
        stack_ics([])


def test_param_norm_is_the_norm_of_each_layer_group():
    model = _tiny("bn")
    res = ics(model, _batch(), 0.1)
    want = [float(torch.cat([p.detach().flatten() for p in ps]).norm()) for _, ps in layer_groups(model)]
    np.testing.assert_allclose(res.param_norm, want, rtol=1e-6)
    assert stack_ics([res, res])["param_norm"].shape == (2, 3)


def _two_runs(lr: float = 0.2) -> list:
    g = torch.Generator().manual_seed(2)
    data = (torch.randn(300, 5, generator=g), torch.randint(0, 3, (300,), generator=g),
            torch.randn(50, 5, generator=g), torch.randint(0, 3, (50,), generator=g))
    make = lambda: mlp((8, 6), init_std=0.5, in_features=5, num_classes=3)  # noqa: E731
    return [fit(make, data, steps=steps, lr=lr, batch_size=20, seed=seed, probes={"ics": ics_probe(every=10)},
                progress=False) for seed, steps in ((0, 30), (1, 20))]


def test_ics_series_stacks_seeds_and_computes_step_sizes():
    runs = _two_runs(lr=0.2)
    steps, rel, names = ics_series(runs, "relative")
    assert list(steps) == [0, 10, 20] and rel.shape == (2, 3, 3) and names == ["fc1", "fc2", "out"]
    np.testing.assert_array_equal(rel[1], stack_ics(runs[1].probes["ics"])["relative"])
    _, size, _ = ics_series(runs, "step_size")
    st = stack_ics(runs[0].probes["ics"])
    np.testing.assert_allclose(size[0], 0.2 * st["grad_norm"][:3] / st["param_norm"][:3])  # cut to the shorter run
    with pytest.raises(ValueError, match="unknown ICS quantity"):
        ics_series(runs, "layers")
    with pytest.raises(ValueError, match="no probe"):
        ics_series(runs, "cos", probe="pct")
    with pytest.raises(ValueError, match="no histories"):
        ics_series([], "cos")


def test_jitter_is_the_mean_step_to_step_change():
    series = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 4.0]])  # 3 probes, 2 units
    np.testing.assert_allclose(jitter(series), [1.0, 1.5])
    with pytest.raises(ValueError, match="two steps"):
        jitter(np.zeros((1, 3)))


def test_ics_per_unit_of_lower_layer_movement():
    model = _tiny()
    x, y = _batch()
    lr = 0.3
    res = ics(model, (x, y), lr)
    params = [model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
    # the layers below "out" (fc1 and fc2) moved by lr * their joint gradient
    moved = lr * float(torch.cat([g.flatten() for g in grads]).norm())
    np.testing.assert_allclose(res.lower_step, [0.0, lr * float(torch.cat([g.flatten() for g in grads[:2]]).norm()),
                                                moved], rtol=1e-5)
    np.testing.assert_allclose(res.per_movement[2], res.ics[2] / moved, rtol=1e-5)
    assert np.isnan(res.per_movement[0])  # layer 1: nothing below it moved
    # for small steps the ratio tends to a finite curvature (a mixed second derivative), not to 0
    small = ics(model, (x, y), 1e-3)
    smaller = ics(model, (x, y), 5e-4)
    assert np.all(small.ics[1:] > 1.5 * smaller.ics[1:])
    np.testing.assert_allclose(small.per_movement[1:], smaller.per_movement[1:], rtol=0.05)
    st = stack_ics([res, small])
    assert st["per_movement"].shape == (2, 3) and st["lower_step"].shape == (2, 3)


def test_ics_series_reads_per_movement():
    hs = [fit(lambda: _tiny(), (torch.randn(64, 5), torch.randint(0, 3, (64,)), torch.randn(16, 5),
                               torch.randint(0, 3, (16,))), steps=4, lr=0.1, batch_size=16, seed=s, progress=False,
              probes={"ics": ics_probe(every=2)}) for s in (0, 1)]
    steps, values, layers = ics_series(hs, "per_movement")
    assert values.shape == (2, len(steps), 3) and np.all(np.isnan(values[:, :, 0]))
    assert np.all(np.isfinite(values[:, :, 1:])) and np.all(values[:, :, 1:] > 0)


def test_relative_ics_per_unit_of_relative_lower_layer_movement():
    model = _tiny("bn")
    x, y = _batch()
    res = ics(model, (x, y), 0.3)
    norms = [float(torch.cat([p.detach().flatten() for p in ps]).norm()) for _, ps in layer_groups(model)]
    np.testing.assert_allclose(res.lower_norm, [0.0, norms[0], np.hypot(norms[0], norms[1])], rtol=1e-6)
    want = res.relative[1:] / (res.lower_step[1:] / res.lower_norm[1:])
    np.testing.assert_allclose(res.relative_per_movement[1:], want, rtol=1e-12)
    assert np.isnan(res.relative_per_movement[0])
    st = stack_ics([res, res])
    assert st["relative_per_movement"].shape == (2, 3) and st["lower_norm"].shape == (2, 3)


def test_relative_per_movement_does_not_see_the_weight_scale_under_bn():
    """Scaling a weight that feeds BN leaves the function alone: the absolute ratio falls as 1/α, this one stays."""
    x, y = _batch()

    def scaled(alpha: float) -> nn.Sequential:
        torch.manual_seed(0)
        net = mlp((8, 6), activation="tanh", norm="bn", init_std=0.5, in_features=5, num_classes=3,
                  norm_kwargs={"affine": False})       # layer 1 is fc1's weight only
        with torch.no_grad():
            net.fc1.weight.mul_(alpha)
        return net

    one, three = ics(scaled(1.0), (x, y), 1e-3), ics(scaled(3.0), (x, y), 1e-3)
    np.testing.assert_allclose(three.grad_norm[1], one.grad_norm[1], rtol=1e-5)   # same function above fc1
    np.testing.assert_allclose(three.per_movement[1], one.per_movement[1] / 3, rtol=0.02)
    np.testing.assert_allclose(three.relative_per_movement[1], one.relative_per_movement[1], rtol=0.02)


def test_ics_series_reads_relative_per_movement():
    runs = _two_runs()
    steps, values, _ = ics_series(runs, "relative_per_movement")
    assert values.shape == (2, len(steps), 3) and np.all(np.isnan(values[:, :, 0]))
    assert np.all(np.isfinite(values[:, :, 1:])) and np.all(values[:, :, 1:] > 0)
