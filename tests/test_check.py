"""bnlab.check: the homework checkers accept the reference and catch typical mistakes."""
from __future__ import annotations

import numpy as np
import pytest

from bnlab import check
from bnlab import functional as F


@pytest.mark.parametrize("checker,fn", [
    (check.batchnorm_forward, F.batchnorm_forward),
    (check.batchnorm_backward, F.batchnorm_backward),
    (check.batchnorm_backward, F.batchnorm_backward_alt),
    (check.batchnorm_backward_alt, F.batchnorm_backward_alt),
    (check.batchnorm_inference, F.batchnorm_inference),
    (check.layernorm_forward, F.layernorm_forward),
    (check.layernorm_backward, F.layernorm_backward),
    (check.update_running_stats, F.update_running_stats),
    (check.groupnorm_forward, F.groupnorm_forward),
    (check.groupnorm_backward, F.groupnorm_backward),
])
def test_reference_passes(checker, fn, capsys):
    result = checker(fn)
    assert result.passed and bool(result)
    # layer norm of D = 1 feature is constant (β): its exact zero gradient meets finite differences of ~1e-15
    assert result.worst_error < (1e-6 if checker in (check.layernorm_backward, check.groupnorm_backward) else 1e-8)
    assert capsys.readouterr().out.startswith(f"PASS {checker.__name__}")
    assert {e[0] for e in result.errors} == set(check.SHAPES)


def test_forward_with_unbiased_variance_fails_on_out(capsys):
    def student(x, gamma, beta, eps=1e-5):
        return gamma * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + beta, None
    result = check.batchnorm_forward(student)
    assert not result.passed and result.worst_output == "out"
    assert "FAIL batchnorm_forward: out is wrong" in capsys.readouterr().out


def test_backward_without_the_variance_path_fails_on_dx(capsys):
    def student(dout, cache):  # forgets ∂ℓ/∂σ²: only the mean is removed
        dxhat = dout * cache["gamma"]
        dx = (dxhat - dxhat.mean(0)) * cache["inv_std"]
        return dx, (dout * cache["xhat"]).sum(0), dout.sum(0)
    result = check.batchnorm_backward(student, verbose=False)
    assert not result.passed and result.worst_output == "dx" and result.worst_error > 1e-3
    assert capsys.readouterr().out == ""


def test_backward_with_wrong_dbeta_is_named():
    result = check.batchnorm_backward_alt(lambda d, c: (F.batchnorm_backward_alt(d, c)[0], (d * c["xhat"]).sum(0),
                                                        d.mean(0)), verbose=False)
    assert not result.passed and result.worst_output == "dbeta"
    assert "dbeta is wrong" in result.message


def test_student_forward_with_its_own_cache():
    def forward(x, gamma, beta, eps=1e-5):
        mu, var = x.mean(0), x.var(0)
        xhat = (x - mu) / np.sqrt(var + eps)
        return gamma * xhat + beta, (xhat, gamma, var, eps)

    def backward(dout, cache):
        xhat, gamma, var, eps = cache
        m = len(dout)
        dgamma, dbeta = (dout * xhat).sum(0), dout.sum(0)
        return gamma / (m * np.sqrt(var + eps)) * (m * dout - dbeta - xhat * dgamma), dgamma, dbeta
    assert check.batchnorm_backward(backward, forward=forward, verbose=False).passed


def test_crashes_and_wrong_returns_fail_with_a_message(capsys):
    result = check.batchnorm_backward(lambda d, c: 1 / 0)
    assert not result.passed and result.worst_error == float("inf")
    assert "raised ZeroDivisionError" in capsys.readouterr().out
    assert "should return 3 value(s)" in check.batchnorm_backward(lambda d, c: d, verbose=False).message
    assert "of shape" in check.batchnorm_backward(lambda d, c: (d, d, d), verbose=False).message
    assert "forward should return (out, cache)" in check.batchnorm_backward(
        F.batchnorm_backward, forward=lambda x, g, b: x, verbose=False).message


def test_running_stats_without_unbiasing_fails():
    result = check.update_running_stats(
        lambda rm, rv, bm, bv, m, mom: F.update_running_stats(rm, rv, bm, bv, m, mom, unbiased=False), verbose=False)
    assert not result.passed and result.worst_output == "running var"


def test_inference_with_batch_statistics_fails():
    result = check.batchnorm_inference(lambda x, g, b, rm, rv, eps=1e-5: F.batchnorm_forward(x, g, b, eps)[0],
                                       verbose=False)
    assert not result.passed


# --------------------------------------------------------------------------- the slips a checker names

def _cs231n_momentum(rm, rv, bm, bv, m, momentum):
    return momentum * rm + (1 - momentum) * bm, momentum * rv + (1 - momentum) * bv * m / (m - 1)


def _biased_variance(rm, rv, bm, bv, m, momentum):
    return (1 - momentum) * rm + momentum * bm, (1 - momentum) * rv + momentum * bv


def _both_slips(rm, rv, bm, bv, m, momentum):
    return momentum * rm + (1 - momentum) * bm, momentum * rv + (1 - momentum) * bv


@pytest.mark.parametrize("student,words", [
    (_cs231n_momentum, ["weight of the OLD value", "CS231n"]),
    (_biased_variance, ["biased batch variance", "m/(m − 1)"]),
    (_both_slips, ["Two slips", "weight of the OLD value", "biased batch variance"]),
])
def test_update_running_stats_names_the_slip(student, words):
    result = check.update_running_stats(student, verbose=False)
    assert not result.passed
    for word in words:
        assert word in result.message


def test_update_running_stats_other_bugs_get_no_false_diagnosis():
    result = check.update_running_stats(lambda rm, rv, bm, bv, m, mom: (bm, bv), verbose=False)
    assert not result.passed and "CS231n" not in result.message and "biased" not in result.message


def test_a_correct_float32_implementation_is_told_to_compute_in_float64():
    def student(x, gamma, beta, eps=1e-5):
        x = x.astype(np.float32)
        return (gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta).astype(np.float32), None
    result = check.batchnorm_forward(student, verbose=False)
    assert not result.passed
    assert "float32" in result.message and "float64" in result.message and "is wrong" not in result.message


def test_a_wrong_float32_implementation_is_still_wrong():
    def student(x, gamma, beta, eps=1e-5):
        x = x.astype(np.float32)
        return (gamma * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + beta).astype(np.float32), None
    result = check.batchnorm_forward(student, verbose=False)
    assert "out is wrong" in result.message and "float64" in result.message


@pytest.mark.parametrize("checker,fn", [
    (check.spatial_batchnorm_forward, F.spatial_batchnorm_forward),
    (check.spatial_batchnorm_backward, F.spatial_batchnorm_backward),
])
def test_spatial_checkers_pass_the_reference(checker, fn):
    result = checker(fn, verbose=False)
    assert result.passed and result.worst_error < 1e-8
    assert {e[0] for e in result.errors} == set(check.SPATIAL_SHAPES)


def test_spatial_checker_catches_per_pixel_normalization():
    """The old, wrong recipe: flatten each image and normalize every pixel separately."""
    def per_pixel(x, gamma, beta, eps=1e-5):
        n, c, h, w = x.shape
        flat = x.reshape(n, -1)
        out = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + eps)
        return out.reshape(x.shape) * gamma.reshape(1, c, 1, 1) + beta.reshape(1, c, 1, 1), None
    result = check.spatial_batchnorm_forward(per_pixel, verbose=False)
    assert not result.passed and result.worst_output == "out"


def test_spatial_backward_checker_catches_a_missing_sum_over_space():
    def student(dout, cache):
        dx, dgamma, dbeta = F.spatial_batchnorm_backward(dout, cache)
        return dx, dgamma, dout[:, :, 0, 0].sum(0)  # β's gradient summed over the batch only
    result = check.spatial_batchnorm_backward(student, verbose=False)
    assert not result.passed and result.worst_output == "dbeta"


def test_groupnorm_that_normalizes_the_whole_row_fails():
    """Layer norm passed off as group norm: right only where the checker uses one group."""
    def student(x, gamma, beta, num_groups, eps=1e-5):
        return F.layernorm_forward(x, gamma, beta, eps)
    result = check.groupnorm_forward(student, verbose=False)
    assert not result.passed and result.worst_output == "out"
    assert any(e[0] == (32, 16) and e[3] > 1e-2 for e in result.errors)
    assert check.groupnorm_groups(16) == 4 and check.groupnorm_groups(5) == 5 and check.groupnorm_groups(1) == 1


def test_groupnorm_backward_without_the_variance_path_fails():
    def student(dout, cache):
        n, d = dout.shape
        g = cache["num_groups"]
        dxhat = (dout * cache["gamma"]).reshape(n, g, d // g)
        dx = (dxhat - dxhat.mean(2, keepdims=True)) * cache["inv_std"]
        return dx.reshape(n, d), (dout * cache["xhat"]).sum(0), dout.sum(0)
    result = check.groupnorm_backward(student, verbose=False)
    assert not result.passed and result.worst_output == "dx"


# --------------------------------------------------------------------------- node by node

def _nodes_with(dout, cache, **changes):
    """The reference node gradients, recomputed downstream of the nodes replaced in ``changes``."""
    g = F.batchnorm_backward_nodes(dout, cache)
    m = len(dout)
    g.update(changes)
    if "var" in changes or "xhat" in changes:
        g["xc"] = g["xhat"] * cache["inv_std"] + 2 * cache["xc"] * g["var"] / m
    g["mu"] = -g["xc"].sum(0)
    g["x"] = g["xc"] + g["mu"] / m
    return g


def test_nodes_checker_passes_the_reference_and_keepdims_shapes(capsys):
    assert check.batchnorm_backward_nodes(F.batchnorm_backward_nodes).passed
    assert capsys.readouterr().out.startswith("PASS batchnorm_backward_nodes")

    def keepdims(dout, cache):   # Karpathy-style (1, D) statistics
        return {k: (v.reshape(1, -1) if v.ndim == 1 else v) for k, v in F.batchnorm_backward_nodes(dout, cache).items()}
    assert check.batchnorm_backward_nodes(keepdims, verbose=False).passed


def test_nodes_checker_names_the_first_wrong_node(capsys):
    def student(dout, cache):  # forgets the −½ of d√v/dv = 1/(2√v): the var node is off by 2
        g = F.batchnorm_backward_nodes(dout, cache)
        return _nodes_with(dout, cache, var=g["std"] / cache["std"])
    result = check.batchnorm_backward_nodes(student)
    out = capsys.readouterr().out
    assert not result.passed and result.worst_output == "var"
    assert "first wrong node is 'var'" in out and "(beta, gamma, xhat, inv_std, std) are right" in out
    assert "var WRONG" in out and "xc WRONG" in out


def test_nodes_checker_catches_a_missing_second_path_into_xc():
    def student(dout, cache):  # ∂ℓ/∂xc only through xhat: xc is the first wrong node
        g = F.batchnorm_backward_nodes(dout, cache)
        return _nodes_with(dout, cache, xc=g["xhat"] * cache["inv_std"])
    result = check.batchnorm_backward_nodes(student, verbose=False)
    assert not result.passed and result.worst_output == "xc"


def test_nodes_checker_reports_missing_keys_and_wrong_returns():
    def student(dout, cache):
        g = F.batchnorm_backward_nodes(dout, cache)
        del g["inv_std"]
        return g
    result = check.batchnorm_backward_nodes(student, verbose=False)
    assert not result.passed and "['inv_std']" in result.message
    result = check.batchnorm_backward_nodes(F.batchnorm_backward, verbose=False)
    assert not result.passed and "should return a dict" in result.message


def test_a_backward_that_returns_zero_dx_fails():
    """With an all-ones upstream gradient the true ∂ℓ/∂x is 0 (Σᵢ yᵢ = mβ whatever x), so a
    backward returning dx = 0 would pass such a check; the checkers' random upstream gradients catch it."""
    x, gamma, beta, _, _ = check._inputs(8, 5, seed=0)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    dx_ones, _, _ = F.batchnorm_backward(np.ones_like(x), cache)
    assert np.abs(dx_ones).max() < 1e-12 * np.abs(x).max()
    result = check.batchnorm_backward(lambda d, c: (np.zeros_like(d), *F.batchnorm_backward(d, c)[1:]), verbose=False)
    assert not result.passed and result.worst_output == "dx"
