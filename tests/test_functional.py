"""bnlab.functional: NumPy batch/layer norm against finite differences and torch autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlab import functional as F
from bnlab.check import _inputs as check_inputs
from bnlab.gradcheck import numerical_gradient, rel_error

SHAPES = [(2, 1), (2, 4), (3, 1), (5, 7), (16, 3), (64, 10)]
BACKWARDS = {"staged": F.batchnorm_backward, "alt": F.batchnorm_backward_alt}


def make_inputs(n: int, d: int, seed: int = 0):
    """x, gamma, beta, dout (float64) and a finite-difference step: the checkers' inputs.

    For N = 2 the batch variance is kept comparable to eps (see ``bnlab.check._inputs``).
    """
    return check_inputs(n, d, seed)


def torch_reference(x, gamma, beta, dout, eps=1e-5):
    """Autograd of the plain formula, float64: (out, dx, dgamma, dbeta)."""
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    mean = xt.mean(0)
    var = ((xt - mean) ** 2).mean(0)
    out = gt * (xt - mean) / torch.sqrt(var + eps) + bt
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


# --------------------------------------------------------------------------- forward

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_normalizes_each_feature_and_keeps_dtype(dtype):
    rng = np.random.default_rng(1)
    x = (5 + 3 * rng.standard_normal((50, 6))).astype(dtype)
    out, cache = F.batchnorm_forward(x, np.ones(6), np.zeros(6))
    assert out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=tol)
    np.testing.assert_allclose(out.var(axis=0), cache["var"] / (cache["var"] + 1e-5), rtol=tol)
    gamma, beta = np.arange(1.0, 7.0), np.arange(6.0)
    out2, _ = F.batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out2, gamma * out + beta, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("n,d", SHAPES)
def test_forward_matches_torch(n, d):
    x, gamma, beta, dout, _ = make_inputs(n, d)
    out, _ = F.batchnorm_forward(x, gamma, beta)
    assert rel_error(out, torch_reference(x, gamma, beta, dout)[0]) < 1e-10


def test_gamma_and_beta_can_undo_the_normalization():
    rng = np.random.default_rng(2)
    x = 3 + 2 * rng.standard_normal((40, 5))
    eps = 1e-5
    gamma, beta = np.sqrt(x.var(axis=0) + eps), x.mean(axis=0)
    out, _ = F.batchnorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(out, x, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- backward

@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("kind", list(BACKWARDS))
def test_backward_against_finite_differences(kind, n, d):
    x, gamma, beta, dout, h = make_inputs(n, d, seed=n * 10 + d)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    grads = BACKWARDS[kind](dout, cache)
    inputs = [x, gamma, beta]
    for j, g in enumerate(grads):
        def f(a, j=j):
            args = list(inputs)
            args[j] = a
            return F.batchnorm_forward(*args)[0]
        num = numerical_gradient(f, inputs[j].copy(), dout, h=h, order=4)
        assert rel_error(g, num) < 1e-8, (kind, ["dx", "dgamma", "dbeta"][j], rel_error(g, num))


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("kind", list(BACKWARDS))
def test_backward_against_torch_autograd(kind, n, d):
    x, gamma, beta, dout, _ = make_inputs(n, d, seed=n * 10 + d)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    _, *want = torch_reference(x, gamma, beta, dout)
    for name, g, w in zip(["dx", "dgamma", "dbeta"], BACKWARDS[kind](dout, cache), want):
        assert rel_error(g, w) < 1e-8, (kind, name, rel_error(g, w))


def test_two_point_central_differences_also_agree_on_ordinary_shapes():
    # the plain CS231n check (h = 1e-5): what a student sees in homework
    x, gamma, beta, dout, _ = make_inputs(8, 5, seed=3)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    dx, _, _ = F.batchnorm_backward(dout, cache)
    num = numerical_gradient(lambda a: F.batchnorm_forward(a, gamma, beta)[0], x.copy(), dout)
    assert rel_error(dx, num) < 1e-7


def test_staged_and_simplified_agree_to_roundoff():
    x, gamma, beta, dout, _ = make_inputs(100, 20, seed=4)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    for a, b in zip(F.batchnorm_backward(dout, cache), F.batchnorm_backward_alt(dout, cache)):
        assert rel_error(a, b) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_is_orthogonal_to_ones_and_to_xhat(dtype):
    """Σᵢ ∂ℓ/∂xᵢ = 0 always; Σᵢ ∂ℓ/∂xᵢ x̂ᵢ = k·∂ℓ/∂γ·ε/(σ²+ε), so exactly 0 only for eps = 0."""
    x, gamma, beta, dout, _ = make_inputs(32, 6, seed=5)
    x, dout = x.astype(dtype), dout.astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for eps in (0.0, 1e-5):
        _, cache = F.batchnorm_forward(x, gamma, beta, eps=eps)
        for backward in BACKWARDS.values():
            dx, dgamma, _ = backward(dout, cache)
            assert dx.dtype == dtype
            scale = np.abs(dx).sum(axis=0)
            assert np.all(np.abs(dx.sum(axis=0)) <= tol * scale)
            along_xhat = (dx * cache["xhat"]).sum(axis=0)
            predicted = cache["inv_std"] * cache["gamma"] * dgamma * eps / (cache["var"] + eps)
            assert np.all(np.abs(along_xhat - predicted) <= 10 * tol * scale)


def test_float32_backward_close_to_float64():
    x, gamma, beta, dout, _ = make_inputs(16, 4, seed=6)
    _, c64 = F.batchnorm_forward(x, gamma, beta)
    _, c32 = F.batchnorm_forward(x.astype(np.float32), gamma, beta)
    dx64 = F.batchnorm_backward_alt(dout, c64)[0]
    dx32 = F.batchnorm_backward_alt(dout.astype(np.float32), c32)[0]
    np.testing.assert_allclose(dx32, dx64, atol=1e-5 * np.abs(dx64).max())


def test_scale_invariance_of_linear_then_bn():
    """BN((aW)u) = BN(Wu), same ∂/∂u, and ∂/∂(aW) = (1/a)·∂/∂W (eps = 0 makes it exact)."""
    rng = np.random.default_rng(7)
    u, w = rng.standard_normal((30, 8)), rng.standard_normal((8, 5))
    gamma, beta, dout = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal((30, 5))

    def run(weights):
        out, cache = F.batchnorm_forward(u @ weights, gamma, beta, eps=0.0)
        dh, _, _ = F.batchnorm_backward_alt(dout, cache)
        return out, dh @ weights.T, u.T @ dh  # out, ∂/∂u, ∂/∂W

    out1, du1, dw1 = run(w)
    for a in (0.1, 3.0, 100.0):
        out_a, du_a, dw_a = run(a * w)
        assert rel_error(out_a, out1) < 1e-10
        assert rel_error(du_a, du1) < 1e-8
        assert rel_error(dw_a, dw1 / a) < 1e-8


def test_bias_before_bn_gets_zero_gradient():
    rng = np.random.default_rng(8)
    h = rng.standard_normal((20, 4)) + rng.standard_normal(4)  # "u W + c"
    _, cache = F.batchnorm_forward(h, rng.standard_normal(4), rng.standard_normal(4))
    dout = rng.standard_normal((20, 4))
    dh, _, _ = F.batchnorm_backward(dout, cache)
    dc = dh.sum(axis=0)  # the bias c is added to every row
    assert np.all(np.abs(dc) < 1e-13 * np.abs(dh).sum(axis=0))


# --------------------------------------------------------------------------- inference and running statistics

def test_inference_with_batch_statistics_equals_training_forward():
    x, gamma, beta, _, _ = make_inputs(10, 3, seed=9)
    out, cache = F.batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(F.batchnorm_inference(x, gamma, beta, cache["mu"], cache["var"]), out, rtol=1e-12)
    single = F.batchnorm_inference(x[:1], gamma, beta, cache["mu"], cache["var"])  # N = 1 is fine at inference
    np.testing.assert_allclose(single, out[:1], rtol=1e-12)


def test_running_statistics_match_torch_batchnorm1d():
    rng = np.random.default_rng(10)
    torch_bn = torch.nn.BatchNorm1d(4, momentum=0.1).double()
    mean, var = np.zeros(4), np.ones(4)
    for _ in range(7):
        x = 2 + 3 * rng.standard_normal((12, 4))
        _, cache = F.batchnorm_forward(x, np.ones(4), np.zeros(4))
        mean, var = F.update_running_stats(mean, var, cache["mu"], cache["var"], len(x), momentum=0.1)
        torch_bn(torch.tensor(x))
    np.testing.assert_allclose(mean, torch_bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, torch_bn.running_var.numpy(), rtol=1e-12)
    torch_bn.eval()
    x = rng.standard_normal((5, 4))
    got = F.batchnorm_inference(x, np.ones(4), np.zeros(4), mean, var)
    np.testing.assert_allclose(got, torch_bn(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_unbiased_variance_factor():
    x = np.array([[1.0], [3.0]])  # biased variance 1, unbiased 2
    _, var = F.update_running_stats(np.zeros(1), np.zeros(1), x.mean(0), x.var(0), 2, momentum=1.0)
    assert var[0] == pytest.approx(2.0)
    _, var = F.update_running_stats(np.zeros(1), np.zeros(1), x.mean(0), x.var(0), 2, momentum=1.0, unbiased=False)
    assert var[0] == pytest.approx(1.0)


def test_running_stats_class_matches_function_and_torch():
    rng = np.random.default_rng(11)
    stats = F.RunningStats(3, momentum=0.1)
    torch_bn = torch.nn.BatchNorm1d(3).double()
    for _ in range(5):
        x = 1 + rng.standard_normal((8, 3))
        stats.update(x)
        torch_bn(torch.tensor(x))
    np.testing.assert_allclose(stats.mean, torch_bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats.var, torch_bn.running_var.numpy(), rtol=1e-12)


def test_cumulative_average_with_momentum_none():
    rng = np.random.default_rng(12)
    batches = [5 + 2 * rng.standard_normal((6, 2)) for _ in range(9)]
    stats = F.RunningStats(2, momentum=None)
    for b in batches:
        stats.update(b)
    np.testing.assert_allclose(stats.mean, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, np.mean([b.var(0, ddof=1) for b in batches], axis=0), rtol=1e-12)
    torch_bn = torch.nn.BatchNorm1d(2, momentum=None).double()
    for b in batches:
        torch_bn(torch.tensor(b))
    np.testing.assert_allclose(stats.var, torch_bn.running_var.numpy(), rtol=1e-12)


def test_bias_correction_fixes_early_estimates_and_fades_later():
    """Population mean 4, variance 9. Started at (0, 1) the EMA is far off for ~1/momentum
    steps; the bias-corrected average is unbiased from the first step on."""
    rng = np.random.default_rng(13)
    plain = F.RunningStats(50, momentum=0.1)
    corrected = F.RunningStats(50, momentum=0.1, bias_correction=True)
    first = None
    for t in range(1, 101):
        x = 4 + 3 * rng.standard_normal((60, 50))
        plain.update(x)
        corrected.update(x)
        if t == 1:
            first = x
            np.testing.assert_allclose(corrected.mean, x.mean(0), rtol=1e-12)      # exactly the first batch
            np.testing.assert_allclose(corrected.var, x.var(0, ddof=1), rtol=1e-12)
            np.testing.assert_allclose(plain.mean, 0.1 * x.mean(0), rtol=1e-12)    # 90% pulled to 0
        if t == 5:
            assert np.abs(plain.mean - 4).mean() > 1.5       # still (1 - 0.9⁵) ≈ 41% short
            assert np.abs(corrected.mean - 4).mean() < 0.3
    assert first is not None
    # after 100 steps 0.9¹⁰⁰ ≈ 3e-5: the two agree
    np.testing.assert_allclose(plain.mean, corrected.mean, rtol=1e-3)
    np.testing.assert_allclose(plain.var, corrected.var, rtol=1e-3)
    assert corrected.correction == pytest.approx(1 - 0.9 ** 100)


# --------------------------------------------------------------------------- layer norm

def check_against_torch(forward, backward, torch_fn, x, gamma, beta, dout, h):
    """A NumPy (forward, backward) pair against torch autograd and 4th-order finite differences."""
    out, cache = forward(x, gamma, beta)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ref = torch_fn(xt, gt, bt)
    ref.backward(torch.tensor(dout))
    assert rel_error(out, ref.detach().numpy()) < 1e-10
    grads = backward(dout, cache)
    inputs = [x, gamma, beta]
    for j, (g, t) in enumerate(zip(grads, (xt, gt, bt))):
        assert rel_error(g, t.grad.numpy()) < 1e-8
        def f(a, j=j):
            args = list(inputs)
            args[j] = a
            return forward(*args)[0]
        assert rel_error(g, numerical_gradient(f, inputs[j].copy(), dout, h=h, order=4)) < 1e-8


@pytest.mark.parametrize("n,d", [(1, 4), (3, 2), (6, 5), (16, 12)])
def test_layernorm_against_torch_and_finite_differences(n, d):
    rng = np.random.default_rng(n + d)
    scale = 3e-3 if d == 2 else 1.0  # two values per row: keep their variance ~ eps (see make_inputs)
    x = 1 + 2 * scale * rng.standard_normal((n, d))
    gamma, beta, dout = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal((n, d))
    check_against_torch(F.layernorm_forward, F.layernorm_backward,
                        lambda xt, gt, bt: torch.nn.functional.layer_norm(xt, (d,), gt, bt, eps=1e-5),
                        x, gamma, beta, dout, h=3e-3 * scale)


def test_layernorm_of_one_feature_is_beta_with_zero_gradient():
    x = np.array([[1.0], [5.0], [-2.0]])
    out, cache = F.layernorm_forward(x, np.array([2.0]), np.array([0.5]))
    np.testing.assert_array_equal(out, 0.5)
    dx, _, _ = F.layernorm_backward(np.ones((3, 1)), cache)
    np.testing.assert_array_equal(dx, 0.0)


# --------------------------------------------------------------------------- group norm

@pytest.mark.parametrize("n,d,g", [(1, 6, 2), (3, 9, 3), (6, 12, 4), (4, 5, 1)])
def test_groupnorm_against_torch_and_finite_differences(n, d, g):
    rng = np.random.default_rng(n + d + g)
    x = 1 + 2 * rng.standard_normal((n, d))
    gamma, beta, dout = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal((n, d))
    check_against_torch(lambda *a: F.groupnorm_forward(*a, g), F.groupnorm_backward,
                        lambda xt, gt, bt: torch.nn.functional.group_norm(xt, g, gt, bt, eps=1e-5),
                        x, gamma, beta, dout, h=1e-3)


def test_groupnorm_of_one_group_is_layernorm():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((5, 6)), rng.standard_normal(6), rng.standard_normal(6)
    np.testing.assert_allclose(F.groupnorm_forward(x, gamma, beta, 1)[0], F.layernorm_forward(x, gamma, beta)[0],
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="positive divisor"):
        F.groupnorm_forward(x, gamma, beta, 4)
    # one feature per group: x̂ = 0, the output is β and the input gradient exactly zero
    out, cache = F.groupnorm_forward(x, gamma, beta, 6)
    np.testing.assert_array_equal(out, np.broadcast_to(beta, x.shape))
    np.testing.assert_array_equal(F.groupnorm_backward(np.ones_like(x), cache)[0], 0.0)


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("x,gamma,beta,match", [
    (np.zeros(4), np.ones(4), np.zeros(4), "2-D"),
    (np.zeros((2, 3, 4)), np.ones(3), np.zeros(3), "2-D"),
    (np.zeros((1, 3)), np.ones(3), np.zeros(3), "at least 2 examples"),
    (np.zeros((4, 3)), np.ones(2), np.zeros(3), "gamma must have shape"),
    (np.zeros((4, 3)), np.ones(3), np.zeros((3, 1)), "beta must have shape"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), np.ones(2), np.zeros(2), "non-finite"),
    (np.array([[0.0, 1.0], [np.inf, 2.0]]), np.ones(2), np.zeros(2), "non-finite"),
    (np.zeros((4, 3)), np.array([1.0, np.inf, 1.0]), np.zeros(3), "non-finite"),
    (np.zeros((4, 3), dtype=np.int64), np.ones(3), np.zeros(3), "floating-point"),
])
def test_bad_input_raises_value_error(x, gamma, beta, match):
    with pytest.raises(ValueError, match=match):
        F.batchnorm_forward(x, gamma, beta)


def test_bad_backward_and_inference_input():
    _, cache = F.batchnorm_forward(np.random.default_rng(0).standard_normal((4, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="dout has shape"):
        F.batchnorm_backward(np.ones((4, 2)), cache)
    with pytest.raises(ValueError, match="non-finite"):
        F.batchnorm_backward_alt(np.full((4, 3), np.nan), cache)
    with pytest.raises(ValueError, match="cache"):
        F.batchnorm_backward(np.ones((4, 3)), (1, 2, 3))
    with pytest.raises(ValueError, match="running_var must have shape"):
        F.batchnorm_inference(np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        F.batchnorm_inference(np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3), -np.ones(3))
    with pytest.raises(ValueError, match="eps"):
        F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        F.update_running_stats(np.zeros(3), np.ones(3), np.zeros(3), np.ones(3), 4, momentum=1.5)
    with pytest.raises(ValueError, match="m >= 2"):
        F.update_running_stats(np.zeros(3), np.ones(3), np.zeros(3), np.ones(3), 1)
    with pytest.raises(ValueError, match="features"):
        F.RunningStats(3).update(np.ones((4, 2)))
    with pytest.raises(ValueError, match="bias_correction"):
        F.RunningStats(3, momentum=None, bias_correction=True)


# --------------------------------------------------------------------------- caches, eps = 0, images

def _caches(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 4))
    bn = F.batchnorm_forward(x, np.ones(4), np.zeros(4))[1]
    ln = F.layernorm_forward(x, np.ones(4), np.zeros(4))[1]
    sp = F.spatial_batchnorm_forward(rng.standard_normal((2, 4, 3, 3)), np.ones(4), np.zeros(4))[1]
    gn = F.groupnorm_forward(x, np.ones(4), np.zeros(4), num_groups=2)[1]
    return bn, ln, sp, gn


@pytest.mark.parametrize("backward,wrong", [
    (F.batchnorm_backward, "ln"), (F.batchnorm_backward_alt, "ln"), (F.layernorm_backward, "bn"),
    (F.batchnorm_backward, "sp"), (F.layernorm_backward, "sp"), (F.spatial_batchnorm_backward, "bn"),
    (F.groupnorm_backward, "bn"), (F.groupnorm_backward, "ln"), (F.batchnorm_backward, "gn"),
    (F.layernorm_backward, "gn"),
])
def test_each_backward_refuses_a_cache_its_forward_did_not_make(backward, wrong):
    caches = dict(zip(("bn", "ln", "sp", "gn"), _caches()))
    cache = caches[wrong]
    dout = np.ones(np.shape(cache["x"]))
    with pytest.raises(ValueError, match="cache") as info:
        backward(dout, cache)
    assert "_forward" in str(info.value)


def test_a_hand_built_layernorm_cache_without_the_layer_key_is_refused_by_batchnorm_backward():
    """Recognised by the statistics' shape too: (N, 1) per example is layer norm's."""
    _, ln, _, _ = _caches()
    ln = {k: v for k, v in ln.items() if k != "layer"}
    with pytest.raises(ValueError, match=r"\(D,\) per feature"):
        F.batchnorm_backward(np.ones((5, 4)), ln)


def test_eps_zero_with_a_constant_feature_is_refused_not_nan():
    x = np.random.default_rng(1).standard_normal((6, 3))
    x[:, 2] = 0.0  # a border pixel: 0 in every image
    with pytest.raises(ValueError, match="eps=0 and feature 2 is constant"):
        F.batchnorm_forward(x, np.ones(3), np.zeros(3), eps=0.0)
    with pytest.raises(ValueError, match="eps > 0"):
        F.layernorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=0.0)
    out, _ = F.batchnorm_forward(x, np.ones(3), np.zeros(3))  # the default eps: finite, column 2 is β
    assert np.isfinite(out).all() and np.all(out[:, 2] == 0.0)
    F.batchnorm_forward(x[:, :2], np.ones(2), np.zeros(2), eps=0.0)  # eps = 0 without a constant feature is fine


def test_4d_input_error_suggests_the_spatial_recipe_not_per_pixel_flattening():
    with pytest.raises(ValueError) as info:
        F.batchnorm_forward(np.ones((4, 3, 2, 2)), np.ones(3), np.zeros(3))
    message = str(info.value)
    assert "spatial_batchnorm_forward" in message and "transpose(0, 2, 3, 1).reshape(-1, C)" in message


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (1, 2, 3, 3), (6, 1, 1, 1), (3, 4, 2, 7)])
def test_spatial_batchnorm_matches_torch_batchnorm2d(shape):
    """Forward and backward against nn.BatchNorm2d in float64 (training mode)."""
    import torch
    rng = np.random.default_rng(sum(shape))
    x = 1 + 3 * rng.standard_normal(shape)
    gamma, beta, dout = rng.standard_normal(shape[1]), rng.standard_normal(shape[1]), rng.standard_normal(shape)
    out, cache = F.spatial_batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = F.spatial_batchnorm_backward(dout, cache)
    layer = torch.nn.BatchNorm2d(shape[1]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = layer(xt)
    yt.backward(torch.from_numpy(dout))
    for mine, ref in ((out, yt), (dx, xt.grad), (dgamma, layer.weight.grad), (dbeta, layer.bias.grad)):
        np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert out.shape == dx.shape == shape


def test_per_pixel_flattening_is_not_spatial_batch_norm():
    """What the old advice x.reshape(len(x), -1) computes differs from nn.BatchNorm2d's per-channel statistics."""
    x = np.random.default_rng(2).standard_normal((8, 2, 3, 3)) * np.array([1.0, 3.0]).reshape(1, 2, 1, 1)
    spatial, _ = F.spatial_batchnorm_forward(x, np.ones(2), np.zeros(2))
    per_pixel, _ = F.batchnorm_forward(x.reshape(len(x), -1), np.ones(18), np.zeros(18))
    assert np.abs(spatial - per_pixel.reshape(x.shape)).max() > 0.1


@pytest.mark.parametrize("n,d", [(2, 3), (16, 3)])
def test_backward_nodes_equal_autograd_at_every_node(n, d):
    """Every intermediate gradient of the staged backward equals autograd's on the same graph."""
    x, gamma, beta, dout, _ = make_inputs(n, d, seed=7)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    got = F.batchnorm_backward_nodes(dout, cache)
    assert list(got) == list(F.BACKWARD_NODES)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in (("x", x), ("gamma", gamma), ("beta", beta))}
    t["mu"] = t["x"].mean(0)
    t["xc"] = t["x"] - t["mu"]
    t["var"] = (t["xc"] ** 2).mean(0)
    t["std"] = torch.sqrt(t["var"] + cache["eps"])
    t["inv_std"] = 1 / t["std"]
    t["xhat"] = t["xc"] * t["inv_std"]
    for v in t.values():
        v.retain_grad()
    (t["gamma"] * t["xhat"] + t["beta"]).backward(torch.tensor(dout))
    for key in F.BACKWARD_NODES:
        assert rel_error(got[key], t[key].grad.numpy()) < 1e-10, key
    dx, dgamma, dbeta = F.batchnorm_backward(dout, cache)
    assert np.array_equal(dx, got["x"]) and np.array_equal(dgamma, got["gamma"]) and np.array_equal(dbeta, got["beta"])


def test_a_hand_built_keepdims_cache_still_works_with_the_reference_backward():
    """Statistics of shape (1, D) (a forward written with keepdims=True) are batch norm's too."""
    x, gamma, beta, dout, _ = make_inputs(6, 3, seed=3)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    keepdims = {k: (v.reshape(1, -1) if isinstance(v, np.ndarray) and v.ndim == 1 else v)
                for k, v in cache.items() if k != "layer"}
    for got, want in zip(F.batchnorm_backward_alt(dout, keepdims), F.batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(np.squeeze(got), want, rtol=1e-12)
