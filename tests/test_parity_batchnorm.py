"""Parity: the same scenario through ``bnlab.layers.BatchNorm`` and ``nn.BatchNorm1d/2d``.

Wherever torch's layer works, ours gives the same result within the dtype's
tolerance; wherever torch's refuses, ours refuses too, with a message that names
the layer and the fix.
"""
from __future__ import annotations

import copy
import io
import itertools
import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

from bnlab import layers, models
from bnlab.layers import BatchNorm, batchnorm_train


def torch_layer(shape, **kw) -> nn.Module:
    cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    return cls(shape[1], **kw)


def pair(shape, seed: int = 0, **kw) -> tuple[nn.Module, nn.Module]:
    """Our layer and torch's, with the same random γ and β."""
    ours, ref = BatchNorm(shape[1], **kw), torch_layer(shape, **kw)
    if ours.affine:
        g = torch.Generator().manual_seed(seed)
        w, b = 1 + torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
        with torch.no_grad():
            for layer in (ours, ref):
                layer.weight.copy_(w)
                layer.bias.copy_(b)
    return ours, ref


# --------------------------------------------------------------------------- second order

SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(("input", "weight", "bias"), r)]


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 4)])
@pytest.mark.parametrize("needs", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_double_backward_with_any_subset_requiring_grad(shape, needs):
    """∂/∂(everything that needs it) of ⟨∇ loss, v⟩: a Hessian-vector product through BN."""
    torch.manual_seed(0)
    results = []
    for layer in pair(shape, seed=1):
        layer.double()
        layer.weight.requires_grad_("weight" in needs)
        layer.bias.requires_grad_("bias" in needs)
        x = (torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 + 1)
        x.requires_grad_("input" in needs)
        target = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        inputs = [t for t, name in ((x, "input"), (layer.weight, "weight"), (layer.bias, "bias")) if name in needs]
        loss = ((layer(x) - target) ** 3).sum()  # cubic: the Hessian depends on the output too
        grads = torch.autograd.grad(loss, inputs, create_graph=True)
        # a random direction: with v = 1 the input part would vanish (Σᵢ ∂loss/∂xᵢ = 0 per channel for any x)
        vg = torch.Generator().manual_seed(4)
        v = [torch.randn(g.shape, dtype=g.dtype, generator=vg) for g in grads]
        results.append(torch.autograd.grad(grads, inputs, v, allow_unused=True))
    for mine, ref in zip(*results):
        if ref is None:
            assert mine is None or torch.count_nonzero(mine) == 0
        else:
            torch.testing.assert_close(mine, ref, rtol=1e-9, atol=1e-9)


def _hvp(norm: str, frozen: tuple[str, ...]) -> list[torch.Tensor]:
    """Hessian-vector product of an mlp's cross-entropy w.r.t. its trainable parameters."""
    torch.manual_seed(0)
    model = models.mlp(widths=(16, 16), norm=norm, in_features=12).double()
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 12, dtype=torch.float64, generator=g), torch.randint(0, 10, (20,), generator=g)
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, dtype=p.dtype, generator=g) for p in params]
    return list(torch.autograd.grad(grads, params, v))


@pytest.mark.parametrize("frozen", [("fc1",), ("norm1", "norm2"), ("fc1", "norm1"), ()],
                         ids=["fc1 frozen", "gamma-beta frozen", "fc1 and norm1 frozen", "none frozen"])
def test_hessian_vector_product_of_mlp_bn_equals_torch_bn(frozen):
    """What a curvature probe computes, with frozen layers: BN's input or γ, β without grad."""
    mine, ref = _hvp("bn", frozen), _hvp("torch_bn", frozen)
    assert len(mine) == len(ref) > 0
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------- dtypes and precision

SHAPES = [(16, 5), (6, 4, 7), (4, 3, 5, 5)]
# tolerance per dtype: a few units in the last place of the dtype, after normalization
TOL = {torch.float16: 4e-3, torch.bfloat16: 3e-2, torch.float32: 1e-5, torch.float64: 1e-12}


def run_steps(layer: nn.Module, xs: list[torch.Tensor], dout: torch.Tensor) -> dict[str, torch.Tensor]:
    """Train-mode forward/backward on each batch, then one eval forward: everything that can differ."""
    record: dict[str, torch.Tensor] = {}
    for k, x in enumerate(xs):
        x = x.clone().requires_grad_(True)
        out = layer(x)
        out.backward(dout.to(out.dtype))
        record[f"out{k}"], record[f"dx{k}"] = out.detach(), x.grad
    record["dweight"], record["dbias"] = layer.weight.grad, layer.bias.grad
    record["running_mean"], record["running_var"] = layer.running_mean.clone(), layer.running_var.clone()
    layer.eval()
    record["eval"] = layer(xs[0]).detach()
    return record


def assert_same_records(mine: dict, ref: dict, tol: float) -> None:
    assert mine.keys() == ref.keys()
    for key in ref:
        assert mine[key].dtype == ref[key].dtype, key
        assert mine[key].shape == ref[key].shape, key
        torch.testing.assert_close(mine[key].double(), ref[key].double(), rtol=tol, atol=tol, msg=key)


def batches(shape, dtype, n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(1 + k + (2 + k) * torch.randn(shape, generator=g)).to(dtype) for k in range(n)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_layer_in_each_dtype_matches_torch(shape, dtype):
    """layer.to(dtype) on input of that dtype: outputs, gradients, running statistics, eval output."""
    ours, ref = (layer.to(dtype) for layer in pair(shape, seed=4))
    dout = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    xs = batches(shape, dtype)
    assert_same_records(run_steps(ours, xs, dout), run_steps(ref, xs, dout), TOL[dtype])


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_low_precision_input_into_float32_layer_matches_torch(shape, dtype):
    """Mixed precision: half/bf16 input, float32 parameters; output keeps the input dtype, stats stay float32."""
    ours, ref = pair(shape, seed=6)
    dout = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    xs = batches(shape, dtype, seed=8)
    mine, want = run_steps(ours, xs, dout), run_steps(ref, xs, dout)
    assert mine["out0"].dtype == mine["eval"].dtype == mine["dx0"].dtype == dtype
    assert ours.running_mean.dtype == ours.weight.grad.dtype == torch.float32
    assert_same_records(mine, want, TOL[dtype])


def test_float16_statistics_do_not_overflow():
    """64·32·32 values near 1 per channel: a float16 sum would pass 65,504; torch's is finite, so is ours."""
    x = (0.5 + torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))).half()
    ours, ref = BatchNorm(3).half(), nn.BatchNorm2d(3).half()
    out, want = ours(x), ref(x)
    assert torch.isfinite(out).all() and torch.isfinite(ours.running_mean).all()
    torch.testing.assert_close(out.float(), want.float(), rtol=4e-3, atol=4e-3)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_mlp_trains_under_cpu_autocast_like_torch_bn(dtype):
    """A few SGD steps of mlp(norm="bn") under torch.autocast equal mlp(norm="torch_bn")'s."""
    losses = {}
    for norm in ("bn", "torch_bn"):
        torch.manual_seed(0)
        model = models.mlp(widths=(32, 32), norm=norm, in_features=20)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        losses[norm] = []
        for _ in range(3):
            x, y = torch.randn(30, 20, generator=g), torch.randint(0, 10, (30,), generator=g)
            with torch.autocast("cpu", dtype=dtype):
                logits = model(x)
                loss = nn.functional.cross_entropy(logits, y)
            assert logits.dtype == dtype
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[norm].append(loss.item())
        losses[norm].append(model.norm1.running_mean.clone())
    torch.testing.assert_close(torch.tensor(losses["bn"][:3]), torch.tensor(losses["torch_bn"][:3]),
                               rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(losses["bn"][3], losses["torch_bn"][3], rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_channels_last_input_matches_torch_and_keeps_its_memory_format(training):
    shape = (4, 3, 5, 5)
    ours, ref = pair(shape, seed=9)
    ours.train(training), ref.train(training)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(10)).to(memory_format=torch.channels_last)
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_(True)
        out = layer(xi)
        out.backward(torch.ones_like(out))
        results.append((out, xi.grad))
    (out, dx), (want, dwant) = results
    assert out.is_contiguous(memory_format=torch.channels_last) == want.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, dwant, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4, 4), (5, 3, 0)], ids=str)
def test_empty_batch_behaves_like_torch(shape):
    """An empty batch: empty output, running statistics unchanged, the counter advances (torch's rule)."""
    ours, ref = pair(shape, seed=11)
    x = torch.randn(shape)
    out, want = ours(x), ref(x)
    assert out.shape == want.shape == shape
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked)


@pytest.mark.parametrize("momentum", [0.0, 1.0, None])
def test_momentum_edge_values_match_torch(momentum):
    shape = (10, 4)
    ours, ref = pair(shape, seed=12, momentum=momentum)
    dout = torch.randn(shape)
    assert_same_records(run_steps(ours, batches(shape, torch.float32, n=4), dout),
                        run_steps(ref, batches(shape, torch.float32, n=4), dout), 1e-5)


# --------------------------------------------------------------------------- where torch refuses, ours refuses

REFUSED = {
    "float64 into float32": (lambda: BatchNorm(3), lambda: nn.BatchNorm1d(3), torch.randn(8, 3).double(),
                             TypeError, ["BatchNorm(3)", "model.double()"]),
    "float32 into float16": (lambda: BatchNorm(3).half(), lambda: nn.BatchNorm1d(3).half(), torch.randn(8, 3),
                             TypeError, ["BatchNorm(3)", "model.float()"]),
    "bfloat16 into float16": (lambda: BatchNorm(3).half(), lambda: nn.BatchNorm1d(3).half(),
                              torch.randn(8, 3).bfloat16(), TypeError, ["BatchNorm(3)", "model.bfloat16()"]),
    "uint8 pixels": (lambda: BatchNorm(3), lambda: nn.BatchNorm1d(3), torch.randint(0, 255, (8, 3), dtype=torch.uint8),
                     TypeError, ["BatchNorm(3)", "x.float()"]),
    "eps=0 in training": (lambda: BatchNorm(3, eps=0), lambda: nn.BatchNorm1d(3, eps=0), torch.zeros(8, 3),
                          ValueError, ["eps", "eps > 0"]),
    "one value per channel": (lambda: BatchNorm(3), lambda: nn.BatchNorm1d(3), torch.randn(1, 3),
                              ValueError, ["more than 1 value", "model.eval()"]),
    "5-D input": (lambda: BatchNorm(3), lambda: nn.BatchNorm2d(3), torch.randn(2, 3, 2, 2, 2),
                  ValueError, ["BatchNorm(3)", "(N, C, H, W)"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_where_torch_refuses_ours_refuses_naming_the_fix(case):
    make_ours, make_ref, x, error, words = REFUSED[case]
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
        make_ref()(x)
    with pytest.raises(error) as info:
        make_ours()(x)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_eval_mode_with_eps_zero_works_like_torch():
    """eps = 0 is refused only in training: in eval mode the running variance is positive."""
    ours, ref = pair((6, 3), seed=13, eps=0.0)
    x = torch.randn(6, 3)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x))


def test_eps_zero_on_a_constant_feature_never_gives_a_silent_nan():
    """Fashion-MNIST's border pixels are 0 in every image: a constant feature."""
    x = torch.randn(8, 3)
    x[:, 1] = 0.0
    with pytest.raises(ValueError, match="eps > 0"):
        BatchNorm(3, eps=0.0)(x)
    assert torch.isfinite(BatchNorm(3)(x)).all()


# --------------------------------------------------------------------------- state dicts, copies, eval mode

def trained_pair(shape=(10, 4), steps: int = 3, **kw) -> tuple[nn.Module, nn.Module]:
    ours, ref = pair(shape, seed=14, **kw)
    for x in batches(shape, torch.float32, n=steps, seed=15):
        ours(x), ref(x)
    return ours, ref


def test_state_dicts_have_the_same_keys_and_load_across():
    ours, ref = trained_pair()
    assert list(ours.state_dict()) == list(ref.state_dict())
    fresh_ref, fresh_ours = nn.BatchNorm1d(4), BatchNorm(4)
    fresh_ref.load_state_dict(ours.state_dict())
    fresh_ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 4)
    for layer in (ours, ref, fresh_ref, fresh_ours):
        layer.eval()
    torch.testing.assert_close(fresh_ref(x), ours(x))
    torch.testing.assert_close(fresh_ours(x), ref(x))
    assert int(fresh_ours.num_batches_tracked) == int(fresh_ref.num_batches_tracked) == 3


@pytest.mark.parametrize("version", [None, 1], ids=["hand-written", "version 1"])
@pytest.mark.parametrize("counter", [0, 7], ids=["fresh layer", "counter 7"])
def test_old_state_dict_without_num_batches_tracked_loads_like_torch(version, counter):
    """Checkpoints from before torch added the counter (or a hand-written BN's) load; the counter is kept."""
    source, _ = trained_pair()
    old = {k: v.clone() for k, v in source.state_dict().items() if k != "num_batches_tracked"}
    if version is not None:  # what torch.save of an old model stored: the layer's version in _metadata
        old = OrderedDict(old)
        old._metadata = {"": {"version": version}}  # type: ignore[attr-defined]
    ours, ref = BatchNorm(4), nn.BatchNorm1d(4)
    ours.num_batches_tracked.fill_(counter)
    ref.num_batches_tracked.fill_(counter)
    ours.load_state_dict(old)
    ref.load_state_dict(old)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == counter
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, source.running_var)


def test_new_state_dict_missing_the_counter_is_refused_like_torch():
    """A version-2 state dict must have the counter: both layers report the missing key."""
    sd = BatchNorm(4).state_dict()
    del sd["num_batches_tracked"]
    for layer in (BatchNorm(4), nn.BatchNorm1d(4)):
        with pytest.raises(RuntimeError, match="num_batches_tracked"):
            layer.load_state_dict(sd)


def test_old_state_dict_loads_inside_a_model():
    """The prefix of a nested layer ("norm1.") is handled too."""
    model = models.mlp(widths=(8,), norm="bn", in_features=6)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    fresh = models.mlp(widths=(8,), norm="bn", in_features=6)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.norm1.running_var, model.norm1.running_var)


def test_deepcopy_and_pickle_keep_state_and_behaviour():
    ours, _ = trained_pair()
    x = torch.randn(6, 4)
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    copies = [copy.deepcopy(ours), torch.load(buffer, weights_only=False)]
    copies.append(pickle.loads(pickle.dumps(ours)))
    for twin in copies:
        assert type(twin) is BatchNorm and twin.momentum == ours.momentum and twin.eps == ours.eps
        for a, b in zip(list(twin.parameters()) + list(twin.buffers()), list(ours.parameters()) + list(ours.buffers())):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
        original = copy.deepcopy(ours)
        torch.testing.assert_close(twin(x), original(x))  # train mode: same output, same update
        torch.testing.assert_close(twin.eval()(x), original.eval()(x))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_eval_mode_matches_torch_and_leaves_statistics_alone(shape):
    ours, ref = pair(shape, seed=16)
    for x in batches(shape, torch.float32, n=3, seed=17):
        ours(x), ref(x)
    ours.eval(), ref.eval()
    before = ours.running_mean.clone(), int(ours.num_batches_tracked)
    x = torch.randn((1,) + tuple(shape[1:]))  # a single example is fine at inference
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(ours.running_mean, before[0]) and int(ours.num_batches_tracked) == before[1]


# --------------------------------------------------------------------------- torch.func

def _func_results(layer: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """grad, jacrev, hessian, jvp and vmap of the layer as a function of (γ, β) and x."""
    from torch.func import functional_call, grad, hessian, jacrev, jvp, vmap
    params = {k: v.detach() for k, v in layer.named_parameters()}

    def call(p, inp):
        return functional_call(layer, p, (inp,))

    def loss(p, inp):
        return call(p, inp).pow(3).sum()
    return {
        "grad": grad(loss)(params, x)["weight"],
        "jacrev": jacrev(lambda inp: call(params, inp))(x),
        "hessian": hessian(loss)(params, x)["weight"]["weight"],
        "jvp": jvp(lambda inp: call(params, inp), (x,), (torch.ones_like(x),))[1],
        "vmap": vmap(lambda inp: call(params, inp))(x.view(2, 3, 3)),
    }


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # raised inside torch.func
def test_torch_func_transforms_in_eval_mode_match_torch():
    ours, ref = pair((6, 3), seed=18)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(19))
    for layer in (ours, ref):
        layer(x)  # running statistics that are not the defaults
        layer.eval()
    mine, want = _func_results(ours, x), _func_results(ref, x)
    for key in want:
        torch.testing.assert_close(mine[key], want[key], rtol=1e-5, atol=1e-5, msg=key)


def test_torch_func_in_training_mode_is_refused_like_torch_naming_the_fix():
    """Training mode updates running statistics in place: torch.func refuses it for both layers."""
    ours, ref = pair((6, 3), seed=20)
    x = torch.randn(6, 3)
    with pytest.raises(RuntimeError):
        _func_results(ref, x)
    with pytest.raises(RuntimeError, match=r"model.eval\(\).*batchnorm_train"):
        _func_results(ours, x)


def test_batchnorm_train_itself_works_under_torch_func():
    """The batch-statistics formula, differentiated by torch.func, equals autograd through the one-node layer."""
    from torch.func import grad, hessian
    g = torch.Generator().manual_seed(21)
    x, w, b = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)

    def loss(w, x):
        return batchnorm_train(x, w, b, 1e-5)[0].pow(3).sum()
    gw, gx = grad(loss, argnums=(0, 1))(w, x)
    w2, x2 = w.clone().requires_grad_(True), x.clone().requires_grad_(True)
    want = torch.autograd.grad(loss(w2, x2), (w2, x2), create_graph=True)
    torch.testing.assert_close(gw, want[0])
    torch.testing.assert_close(gx, want[1])
    h = hessian(loss)(w, x)
    h_want = torch.stack([torch.autograd.grad(want[0][i], w2, retain_graph=True)[0] for i in range(3)])
    torch.testing.assert_close(h, h_want)


# --------------------------------------------------------------------------- the same dtype rules for LayerNorm, GroupNorm

NORM_PAIRS = {
    "LayerNorm": (lambda: layers.LayerNorm(6), lambda: nn.LayerNorm(6)),
    "GroupNorm": (lambda: layers.GroupNorm(2, 6), lambda: nn.GroupNorm(2, 6)),
}


@pytest.mark.parametrize("kind", list(NORM_PAIRS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_layer_and_group_norm_take_mixed_precision_like_torch(kind, dtype):
    """float16/bfloat16 input into float32 LayerNorm/GroupNorm: output in the input's dtype, as torch's."""
    make_ours, make_ref = NORM_PAIRS[kind]
    torch.manual_seed(22)
    ours, ref = make_ours(), make_ref()
    ours.load_state_dict(ref.state_dict())
    x = (3 * torch.randn(5, 6) + 1).to(dtype)
    out, want = ours(x), ref(x)
    assert out.dtype == want.dtype == dtype
    torch.testing.assert_close(out.float(), want.float(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("kind", list(NORM_PAIRS))
def test_layer_and_group_norm_refuse_a_dtype_mismatch_like_torch(kind):
    make_ours, make_ref = NORM_PAIRS[kind]
    x = torch.randn(5, 6).double()
    with pytest.raises(RuntimeError):
        make_ref()(x)
    with pytest.raises(TypeError, match=r"model.double\(\)"):
        make_ours()(x)


@pytest.mark.parametrize("kind", layers.norm_kinds())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_norm_kind_keeps_a_low_precision_input_dtype(kind, dtype):
    """mlp(norm=kind) under autocast feeds float16/bfloat16 into float32 layers: each kind keeps the dtype."""
    kw = {"virtual_batch_size": 4} if kind == "ghost_bn" else {}
    layer = layers.make_norm(kind, 6, **kw)
    x = (2 * torch.randn(8, 6, generator=torch.Generator().manual_seed(23)) + 1).to(dtype)
    for training in (True, False):
        out = layer.train(training)(x)
        assert out.dtype == dtype and torch.isfinite(out.float()).all(), (kind, training)


@pytest.mark.parametrize("kind", [k for k in layers.norm_kinds() if k != "torch_bn"])
def test_every_bnlab_norm_kind_refuses_float64_input_into_float32_parameters(kind):
    kw = {"virtual_batch_size": 4} if kind == "ghost_bn" else {}
    layer = layers.make_norm(kind, 6, **kw)
    if not any(True for _ in layer.parameters()) and not any(True for _ in layer.buffers()):
        pytest.skip(f"{kind} has no parameters or statistics to disagree with")
    with pytest.raises(TypeError, match=r"model.double\(\)"):
        layer(torch.randn(8, 6).double())


@pytest.mark.parametrize("kind", ["bn", "noisy_bn", "bn_detached", "bn_mean", "bn_scale", "bn_reestimated", "bn_frozen"])
def test_every_batchnorm_kind_takes_an_empty_batch_like_torch(kind):
    layer = layers.make_norm(kind, 3)
    state = {k: v.clone() for k, v in layer.state_dict().items() if k != "num_batches_tracked"}
    out = layer(torch.randn(0, 3))
    assert out.shape == (0, 3)
    for k, v in state.items():
        assert torch.equal(layer.state_dict()[k], v), k
