"""bnlab.gradcheck: finite differences, CS231n's relative error, check_gradients, time_backward."""
from __future__ import annotations

import numpy as np
import pytest

from bnlab import functional as F
from bnlab.gradcheck import check_gradients, numerical_gradient, rel_error, time_backward


@pytest.mark.parametrize("order,h,tol", [(2, 1e-5, 1e-8), (4, 1e-3, 1e-10)])
def test_numerical_gradient_of_a_known_function(order, h, tol):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    before = x.copy()
    num = numerical_gradient(lambda a: np.sin(a) * a ** 2, x, dout, h=h, order=order)
    exact = (np.cos(x) * x ** 2 + 2 * x * np.sin(x)) * dout
    assert rel_error(num, exact) < tol
    np.testing.assert_array_equal(x, before)  # x is restored


def test_numerical_gradient_is_a_vector_jacobian_product():
    x = np.array([1.0, 2.0])
    num = numerical_gradient(lambda a: np.array([a.sum(), a.prod(), 3.0]), x, np.array([1.0, 10.0, 5.0]))
    np.testing.assert_allclose(num, [1 + 10 * 2, 1 + 10 * 1], rtol=1e-9)


def test_five_point_stencil_beats_central_differences_on_batchnorm():
    rng = np.random.default_rng(1)
    x, gamma, beta, dout = rng.standard_normal((16, 4)) * 3, np.ones(4), np.zeros(4), rng.standard_normal((16, 4))
    _, cache = F.batchnorm_forward(x, gamma, beta)
    dx = F.batchnorm_backward_alt(dout, cache)[0]
    f = lambda a: F.batchnorm_forward(a, gamma, beta)[0]
    err2 = rel_error(dx, numerical_gradient(f, x.copy(), dout, h=1e-3, order=2))
    err4 = rel_error(dx, numerical_gradient(f, x.copy(), dout, h=1e-3, order=4))
    assert err4 < err2 / 100


def test_rel_error_is_cs231ns_definition():
    assert rel_error(1.0, 1.0) == 0.0
    assert rel_error(0.0, 0.0) == 0.0
    assert rel_error([1.0, 10.0], [2.0, 10.0]) == pytest.approx(1 / 3)
    assert rel_error(0.0, 1e-10) == pytest.approx(1e-10 / 1e-8)   # the 1e-8 floor
    assert rel_error([1.0, -1.0], [-1.0, 1.0]) == pytest.approx(1.0)
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(3), np.zeros(4))


def test_numerical_gradient_bad_input():
    with pytest.raises(ValueError, match="floating-point"):
        numerical_gradient(lambda a: a, np.arange(3), np.ones(3))
    with pytest.raises(ValueError, match="h must be positive"):
        numerical_gradient(lambda a: a, np.ones(3), np.ones(3), h=0)
    with pytest.raises(ValueError, match="order"):
        numerical_gradient(lambda a: a, np.ones(3), np.ones(3), order=3)
    with pytest.raises(ValueError, match="shape"):
        numerical_gradient(lambda a: a.sum(), np.ones(3), np.ones(3))


def test_check_gradients_passes_the_reference_and_names_a_wrong_gradient():
    rng = np.random.default_rng(2)
    inputs = dict(x=rng.standard_normal((6, 3)) * 2, gamma=rng.standard_normal(3), beta=rng.standard_normal(3))
    report = check_gradients(F.batchnorm_forward, inputs, F.batchnorm_backward_alt)
    assert report.passed and set(report.errors) == {"x", "gamma", "beta"}
    assert report.worst < 1e-7 and "PASS" in str(report)

    def wrong(dout, cache):
        dx, dgamma, dbeta = F.batchnorm_backward_alt(dout, cache)
        return dx, dgamma, 2 * dbeta
    report = check_gradients(F.batchnorm_forward, inputs, wrong)
    assert not report.passed and report.worst_name == "beta" and report.worst > 0.1
    assert "FAIL" in str(report)
    seq = check_gradients(F.layernorm_forward, list(inputs.values()), F.layernorm_backward)
    assert seq.passed and list(seq.errors) == ["x0", "x1", "x2"]
    with pytest.raises(ValueError, match="gradients"):
        check_gradients(F.batchnorm_forward, inputs, lambda d, c: (d,))


def test_time_backward_reports_one_time_per_shape():
    times = time_backward({"staged": F.batchnorm_backward, "alt": F.batchnorm_backward_alt},
                          F.batchnorm_forward, [(8, 4), (64, 16)], repeats=3)
    assert set(times) == {"staged", "alt"}
    for t in times.values():
        assert t.shape == (2,) and np.all(t > 0) and np.all(np.isfinite(t))
    with pytest.raises(ValueError, match="repeats"):
        time_backward({"alt": F.batchnorm_backward_alt}, F.batchnorm_forward, [(4, 2)], repeats=0)
