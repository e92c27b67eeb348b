"""The curvature probes: top Hessian eigenvalues by Lanczos on Hessian-vector products, curvature along the gradient."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab import probes, train
from bnlab.models import mlp
from conftest import assert_same_state, model_state


class Quadratic(nn.Module):
    """L(w, z) = ½ wᵀ A w + ½ c z² with a fixed symmetric A: Hessian = blockdiag(A, c)."""

    def __init__(self, eigenvalues: list[float], c: float, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
        self.register_buffer("a", q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T)
        self.w = nn.Parameter(torch.randn(len(eigenvalues), generator=g, dtype=torch.float64))
        self.z = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.c = c

    def loss(self) -> torch.Tensor:
        return 0.5 * self.w @ self.a @ self.w + 0.5 * self.c * self.z ** 2


def full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The full Hessian of the cross-entropy of model(x) in train mode, over all parameters flattened."""
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of_flat(theta: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for (name, p) in model.named_parameters():
            params[name] = theta[i:i + p.numel()].view_as(p)
            i += p.numel()
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        return nn.functional.cross_entropy(torch.func.functional_call(model, {**params, **buffers}, (x,)), y)

    return torch.autograd.functional.hessian(loss_of_flat, flat)


def test_quadratic_with_known_hessian():
    model = Quadratic([5.0, 2.0, 1.0, -0.5, 0.1], c=3.0)
    r = probes.top_hessian_eigenvalue(model, lambda m: m.loss(), iters=200, tol=1e-10)
    assert r.converged and abs(r.value - 5.0) < 1e-6
    # the eigenvector: A v = 5 v in the w block, nothing in z
    v_w, v_z = r.vector
    assert torch.allclose(model.a @ v_w, 5.0 * v_w, atol=1e-4) and abs(float(v_z)) < 1e-4
    # the other block dominates when c is larger
    model.c = 8.0
    assert abs(probes.top_hessian_eigenvalue(model, lambda m: m.loss(), iters=200, tol=1e-10).value - 8.0) < 1e-6


def test_hessian_vector_product_matches_the_full_hessian():
    torch.manual_seed(0)
    model = mlp(widths=(5, 4), norm="bn", in_features=3, num_classes=3).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.arange(10) % 3
    ps = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in ps])
    h = full_hessian(model, x, y)
    v = torch.randn_like(flat)
    vs = torch.split(v, [p.numel() for p in ps])
    hv = probes.hessian_vector_product(nn.functional.cross_entropy(model(x), y), ps,
                                       [s.view_as(p) for s, p in zip(vs, ps)])
    assert torch.allclose(torch.cat([t.reshape(-1) for t in hv]), h @ v, atol=1e-10)
    top = float(torch.linalg.eigvalsh(h)[-1])
    r = probes.top_hessian_eigenvalue(model, probes.batch_loss(nn.functional.cross_entropy, x, y),
                                      iters=500, tol=1e-12)
    assert abs(r.value - top) < 1e-6 * abs(top)


def test_probe_leaves_the_model_bit_identical_and_is_deterministic():
    torch.manual_seed(0)
    model = mlp(widths=(8, 8), norm="bn", in_features=6, num_classes=3)
    x, y = torch.randn(16, 6), torch.arange(16) % 3
    nn.functional.cross_entropy(model(x), y).backward()     # grads present, running stats moved
    model.eval()
    before = model_state(model)
    loss_of = probes.batch_loss(nn.functional.cross_entropy, x, y)
    a = probes.top_hessian_eigenvalue(model, loss_of, iters=10)
    assert_same_state(before, model_state(model))
    b = probes.top_hessian_eigenvalue(model, loss_of, iters=10)
    assert a.value == b.value and a.iterations == b.iterations
    with pytest.raises(ValueError, match="mode"):
        probes.top_hessian_eigenvalue(model, loss_of, mode="batch")
    with pytest.raises(ValueError, match="iters"):
        probes.top_hessian_eigenvalue(model, loss_of, iters=0)


def test_sharpness_as_a_fit_probe(small_fmnist):
    x, y = small_fmnist.x_train[:200], small_fmnist.y_train[:200]
    probe = probes.Sharpness(x, y, every=10, iters=5)
    h = train.fit(lambda: mlp(norm="bn", widths=(32, 32), init_std=0.1), small_fmnist, steps=20, lr=0.1,
                  probes={"sharpness": probe}, progress=False)
    steps, values = h.probe("sharpness")
    assert list(steps) == [0, 10, 20] and values.shape == (3,) and (values > 0).all()
    # probing does not change training
    h2 = train.fit(lambda: mlp(norm="bn", widths=(32, 32), init_std=0.1), small_fmnist, steps=20, lr=0.1,
                   progress=False)
    assert (h.train_loss == h2.train_loss).all()
    with pytest.raises(ValueError, match="length"):
        probes.Sharpness(x, y[:5])
    with pytest.raises(ValueError, match="divide"):
        probes.Sharpness(x, y, batch_size=30)


def test_sharpness_on_batches_of_the_training_size():
    """batch_size: the mean loss of batches normalized by their own statistics; a plain net does not care."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 6), torch.arange(40) % 3
    for norm, same in ((None, True), ("bn", False)):
        model = mlp(widths=(8,), norm=norm, in_features=6, num_classes=3)
        ctx = train.ProbeContext(model, 0, x, y, 0.1, nn.functional.cross_entropy, None)
        whole = probes.Sharpness(x, y, iters=50, tol=1e-9)(ctx)
        split = probes.Sharpness(x, y, batch_size=10, iters=50, tol=1e-9)(ctx)
        assert (abs(whole - split) < 1e-4 * abs(whole)) == same, norm


def test_lanczos_finds_the_largest_not_the_largest_magnitude():
    """A dominant negative eigenvalue (power iteration's answer) is not the top one; top-k in order."""
    model = Quadratic([1.0, 0.5, -10.0, -3.0, 0.25], c=0.2)
    top = probes.top_hessian_eigenvalue(model, lambda m: m.loss(), iters=50, tol=1e-10)
    assert top.converged and abs(top.value - 1.0) < 1e-8 and top.residual < 1e-8
    r = probes.hessian_eigenvalues(model, lambda m: m.loss(), k=3, iters=50, tol=1e-10)
    assert r.converged and r.iterations <= 6
    assert all(abs(a - b) < 1e-8 for a, b in zip(r.values, [1.0, 0.5, 0.25])) and len(r.values) == 3
    for value, (v_w, v_z) in zip(r.values, r.vectors):          # Ritz vectors are eigenvectors
        assert torch.allclose(model.a @ v_w, value * v_w, atol=1e-6) and abs(float(v_z)) < 1e-6
    # every eigenvalue negative: the top one is the least negative
    neg = Quadratic([-1.0, -2.0, -7.0], c=-0.5)
    assert abs(probes.hessian_eigenvalues(neg, lambda m: m.loss(), k=2, iters=20, tol=1e-10).values[0] + 0.5) < 1e-8


def test_top_k_match_the_full_hessian_of_a_bn_mlp():
    torch.manual_seed(1)
    model = mlp(widths=(6, 5), norm="bn", in_features=4, num_classes=3).double()
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.arange(12) % 3
    loss_of = probes.batch_loss(nn.functional.cross_entropy, x, y)
    ps = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in ps])
    exact = torch.linalg.eigvalsh(full_hessian(model, x, y)).flip(0)[:3]
    r = probes.hessian_eigenvalues(model, loss_of, k=3, iters=len(flat), tol=1e-9)
    assert r.converged and torch.allclose(torch.tensor(r.values, dtype=torch.float64), exact, atol=1e-7)


def test_gradient_curvature_on_a_quadratic_and_state():
    model = Quadratic([4.0, 1.0, -2.0], c=3.0)
    g = torch.cat([model.a @ model.w.detach(), 3.0 * model.z.detach().view(1)])
    h = torch.block_diag(model.a, torch.tensor([[3.0]], dtype=torch.float64))
    before = model_state(model)
    c = probes.gradient_curvature(model, lambda m: m.loss())
    assert_same_state(before, model_state(model))
    assert abs(c["hg_over_g"] - float((h @ g).norm() / g.norm())) < 1e-10
    assert abs(c["rayleigh"] - float(g @ h @ g / (g @ g))) < 1e-10 and abs(c["grad_norm"] - float(g.norm())) < 1e-10
    assert c["hg_over_g"] <= 4.0 + 1e-9


def test_hessian_spectrum_probe(small_fmnist):
    x, y = small_fmnist.x_train[:120], small_fmnist.y_train[:120]
    probe = probes.HessianSpectrum(x, y, every=10, batch_size=60, k=3, iters=10)
    torch.manual_seed(0)
    model = mlp(norm="bn", widths=(16, 16), init_std=0.1)
    model(x)                                   # running statistics moved, as after training
    before = model_state(model)
    ctx = train.ProbeContext(model, 0, x, y, 0.1, nn.functional.cross_entropy, None)
    out = probe(ctx)
    assert_same_state(before, model_state(model))
    assert len(out["top"]) == 3 and out["top"][0] >= out["top"][1] >= out["top"][2]
    assert out["hvps"] <= 10 and len(out["residuals"]) == 3 and isinstance(out["converged"], bool)
    assert 0 < out["hg_over_g"] <= out["top"][0] * (1 + 1e-3) + max(out["residuals"])
    assert out == probe(ctx)                   # deterministic
    with pytest.raises(ValueError, match="iters"):
        probes.HessianSpectrum(x, y, k=5, iters=4)
    with pytest.raises(ValueError, match="iters"):
        probes.hessian_eigenvalues(model, probes.batch_loss(nn.functional.cross_entropy, x, y), k=3, iters=2)
