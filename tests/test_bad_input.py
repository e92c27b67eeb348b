"""Bad input: every public function, given wrong types, shapes, dtypes or out-of-range values,
raises an error that names the argument (or the layer) and says how to fix it.

Each case is (call, exception type, words the message must contain). The words are the
argument's name and the fix, so a message that only says "invalid value" fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import arguments, check, data as bdata, functional as F, layers, models, probes, train


def expect(call, error, *words):
    """Run ``call``; it must raise ``error`` with every one of ``words`` in its message."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    return message


def cases(table: dict) -> list:
    return [pytest.param(*v, id=k) for k, v in table.items()]


# --------------------------------------------------------------------------- the shared argument checks

@pytest.mark.parametrize("call,error,words", cases({
    "float steps": (lambda: arguments.integer("steps", 1e2), TypeError, ["steps", "steps=100", "float"]),
    "bool steps": (lambda: arguments.integer("steps", True), TypeError, ["steps", "int"]),
    "str steps": (lambda: arguments.integer("steps", "100"), TypeError, ["steps", "int"]),
    "negative": (lambda: arguments.integer("batch_size", -5, minimum=1), ValueError, ["batch_size", ">= 1", "-5"]),
    "too big": (lambda: arguments.integer("k", 7, minimum=0, maximum=3), ValueError, ["k", "[0, 3]"]),
    "nan": (lambda: arguments.real("lr", float("nan")), ValueError, ["lr", "finite"]),
    "zero strict": (lambda: arguments.real("lr", 0.0, minimum=0, strict=True), ValueError, ["lr", "> 0"]),
    "str real": (lambda: arguments.real("lr", "0.1"), TypeError, ["lr", "number"]),
    "not one of": (lambda: arguments.one_of("mode", "x", ["a", "b"]), ValueError, ["mode", "'a'", "'b'"]),
    "list tensor": (lambda: arguments.as_tensor("x_train", [1, 2]), TypeError, ["x_train", "torch.as_tensor"]),
}))
def test_argument_checks(call, error, words):
    expect(call, error, *words)


def test_argument_checks_accept_good_values():
    assert arguments.integer("n", np.int64(3), minimum=1) == 3
    assert arguments.real("lr", torch.tensor(0.5), minimum=0, strict=True) == 0.5
    assert arguments.real("cap", float("inf"), finite=False) == float("inf")
    assert torch.equal(arguments.as_tensor("x", np.arange(3)), torch.arange(3))


# --------------------------------------------------------------------------- train

@pytest.fixture(scope="module")
def tiny():
    """A small random 'image' dataset: 120 train and 40 test examples of 1×4×4, 3 classes."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(120, 1, 4, 4, generator=g), torch.randint(0, 3, (120,), generator=g),
            torch.rand(40, 1, 4, 4, generator=g), torch.randint(0, 3, (40,), generator=g))


def small_mlp(**kw):
    return lambda: models.mlp(widths=(8,), in_features=16, num_classes=3, **kw)


def fit(data, **kw):
    args = dict(model=small_mlp(), data=data, steps=3, lr=0.1, batch_size=10, progress=False)
    args.update(kw)
    return train.fit(**args)


def test_fit_accepts_numpy_arrays_and_integer_labels_of_any_width(tiny):
    x, y, xt, yt = (t.numpy() for t in tiny)
    hist = fit((x, y.astype(np.int32), xt, yt))
    reference = fit(tiny)
    np.testing.assert_array_equal(hist.train_loss, reference.train_loss)


@pytest.mark.parametrize("change,error,words", cases({
    "steps float": (dict(steps=1e2), TypeError, ["steps", "steps=100"]),
    "steps negative": (dict(steps=-1), ValueError, ["steps", ">= 0"]),
    "batch_size 0": (dict(batch_size=0), ValueError, ["batch_size", ">= 1"]),
    "batch_size -5": (dict(batch_size=-5), ValueError, ["batch_size", ">= 1"]),
    "batch_size float": (dict(batch_size=10.0), TypeError, ["batch_size", "batch_size=10"]),
    "batch_size > n": (dict(batch_size=500), ValueError, ["batch_size=500", "120 training examples"]),
    "batch of one with BN": (dict(batch_size=1, model=small_mlp(norm="bn")), ValueError, ["batch_size=1", ">= 2"]),
    "lr 0": (dict(lr=0), ValueError, ["lr", "> 0"]),
    "lr nan": (dict(lr=float("nan")), ValueError, ["lr", "finite"]),
    "lr str": (dict(lr="0.1"), TypeError, ["lr", "number"]),
    "seed negative": (dict(seed=-1), ValueError, ["seed", "[0, 4294967295]"]),
    "seed float": (dict(seed=0.5), TypeError, ["seed", "int"]),
    "momentum negative": (dict(momentum=-0.9), ValueError, ["momentum", ">= 0"]),
    "weight_decay negative": (dict(weight_decay=-1e-4), ValueError, ["weight_decay", ">= 0"]),
    "eval_every 0": (dict(eval_every=0), ValueError, ["eval_every", ">= 1", "None"]),
    "probe_every float": (dict(probe_every=2.5), TypeError, ["probe_every", "int"]),
    "probes a list": (dict(probes=[lambda ctx: 0]), TypeError, ["probes", "dict"]),
    "loss_fn a string": (dict(loss_fn="mse"), TypeError, ["loss_fn", "function"]),
    "diverge_above 0": (dict(diverge_above=0), ValueError, ["diverge_above", "> 0"]),
    "eval_chunk 0": (dict(eval_chunk=0), ValueError, ["eval_chunk", ">= 1"]),
    "lr_schedule a number": (dict(lr_schedule=0.5), TypeError, ["lr_schedule", "function"]),
    "eval_train a string": (dict(eval_train="yes"), TypeError, ["eval_train", "True or False"]),
    "model a string": (dict(model="mlp"), TypeError, ["model", "nn.Module", "lambda"]),
    "factory returns a string": (dict(model=lambda: "mlp"), TypeError, ["factory", "nn.Module"]),
    "model of the wrong width": (dict(model=lambda: models.mlp(widths=(8,), num_classes=3)), ValueError,
                                 ["model", "in_features=16"]),
    "model with too few classes": (dict(model=lambda: models.mlp(widths=(8,), in_features=16, num_classes=2)),
                                   ValueError, ["labels run to 2", "num_classes=3"]),
}))
def test_fit_validates_every_argument_up_front(tiny, change, error, words):
    expect(lambda: fit(tiny, **change), error, *words)


@pytest.mark.parametrize("make,error,words", cases({
    "float test labels": (lambda d: (d[0], d[1], d[2], d[3].float()), TypeError, ["y_test", "y_test.long()"]),
    "numpy float labels": (lambda d: (d[0].numpy(), d[1].numpy().astype(float), d[2].numpy(), d[3].numpy()),
                           TypeError, ["y_train", "torch.from_numpy(y_train).long()"]),
    "uint8 pixels": (lambda d: ((d[0] * 255).to(torch.uint8), d[1], d[2], d[3]), TypeError,
                     ["x_train", "x_train.float() / 255"]),
    "one-hot labels": (lambda d: (d[0], nn.functional.one_hot(d[1]), d[2], d[3]), ValueError,
                       ["y_train", "argmax(1)"]),
    "negative labels": (lambda d: (d[0], d[1] - 1, d[2], d[3]), ValueError, ["y_train", "negative"]),
    "length mismatch": (lambda d: (d[0], d[1][:-1], d[2], d[3]), ValueError, ["119 labels", "y_train"]),
    "example shapes differ": (lambda d: (d[0], d[1], d[2][:, :, :2], d[3]), ValueError, ["x_train and x_test"]),
    "three parts": (lambda d: d[:3], TypeError, ["data", "(x_train, y_train, x_test, y_test)"]),
    "a list of lists": (lambda d: [d[0].tolist(), d[1], d[2], d[3]], TypeError, ["x_train", "torch.as_tensor"]),
    "a string": (lambda d: "fashion-mnist", TypeError, ["data", "bnlab.data.load()"]),
}))
def test_fit_validates_the_data(tiny, make, error, words):
    expect(lambda: fit(make(tiny)), error, *words)


@pytest.mark.parametrize("call,error,words", cases({
    "fit_many(3)": (lambda: train.fit_many(3), TypeError, ["runs", "list of dicts"]),
    "fit_many misspelt": (lambda: train.fit_many([dict(model=models.mlp, data=None, lrr=0.1)]), ValueError,
                          ["runs[0]", "'lrr'", "fit takes"]),
    "fit_many bad value": (lambda: train.fit_many([dict(model=models.mlp, data=None, steps=1e3, lr=0.1)]),
                           TypeError, ["runs[0]", "steps", "steps=1000"]),
    "fit_many without lr": (lambda: train.fit_many([dict(model=models.mlp, data=None, steps=10)]), ValueError,
                            ["runs[0]", "'lr'"]),
    "fit_many without data": (lambda: train.fit_many([dict(model=models.mlp)]), ValueError, ["runs[0]", "data"]),
    "fit_seeds(seeds=3)": (lambda: train.fit_seeds(models.mlp, None, 3, steps=1, lr=0.1), TypeError,
                           ["seeds", "range(3)"]),
    "fit_seeds float seed": (lambda: train.fit_seeds(models.mlp, None, [0.5], steps=1, lr=0.1), TypeError,
                             ["seed", "int"]),
    "grid misspelt axis": (lambda: train.grid(lambda width=8: models.mlp(widths=(width,)), None, lrr=[0.1]),
                           ValueError, ["'lrr'", "make_model", "fit()"]),
    "grid seeds=3": (lambda: train.grid(lambda: models.mlp(), None, seeds=3, lr=[0.1]), TypeError, ["seeds"]),
    "batch_indices batch 0": (lambda: list(train.batch_indices(10, 0, 3, torch.Generator())), ValueError,
                              ["batch_size", ">= 1"]),
    "batch_indices too big": (lambda: list(train.batch_indices(10, 20, 3, torch.Generator())), ValueError,
                              ["batch_size=20", "10 training examples"]),
    "steps_to lengths": (lambda: train.steps_to([1, 2], [0.5], 0.4), ValueError, ["steps and curve", "same length"]),
    "steps_to window 0": (lambda: train.steps_to([1, 2], [0.5, 0.6], 0.4, window=0), ValueError, ["window", ">= 1"]),
    "fit_full_batch float steps": (lambda: train.fit_full_batch(models.deep_linear, torch.randn(10, 10),
                                                                torch.randn(10, 10), 1e2, 0.1), TypeError,
                                   ["steps", "steps=100"]),
    "fit_full_batch lr 0": (lambda: train.fit_full_batch(models.deep_linear, torch.randn(10, 10),
                                                         torch.randn(10, 10), 2, 0.0), ValueError, ["lr", "> 0"]),
    "fit_full_batch int x": (lambda: train.fit_full_batch(models.deep_linear, torch.ones(10, 10, dtype=torch.long),
                                                          torch.randn(10, 10), 2, 0.1), TypeError, ["x", "x.float()"]),
    "fit_full_batch lengths": (lambda: train.fit_full_batch(models.deep_linear, torch.randn(10, 10),
                                                            torch.randn(9, 10), 2, 0.1), ValueError, ["x and y", "10 vs 9"]),
}))
def test_train_helpers(call, error, words):
    expect(call, error, *words)


def test_history_lookups_name_the_fix(tiny):
    hist = fit(tiny, probes={"zero": lambda ctx: 0.0})
    expect(lambda: hist.accuracy_at(-1), ValueError, "step -1", "evaluated at")
    expect(lambda: hist.probe("grads"), KeyError, "'grads'", "zero")


# --------------------------------------------------------------------------- layers

def _variant(name):
    return lambda *a, **k: getattr(layers, name)(*a, **k)


BN_LIKE = ["BatchNorm", "NoisyBatchNorm", "GhostBatchNorm", "DetachedBatchNorm", "MeanOnlyBatchNorm",
           "ScaleOnlyBatchNorm", "ReestimatedBatchNorm", "FrozenBatchNorm"]


@pytest.mark.parametrize("name", BN_LIKE)
def test_every_batchnorm_layer_refuses_bad_settings_and_input(name):
    make = _variant(name)
    expect(lambda: make(0), ValueError, name, "num_features", "positive int")
    expect(lambda: make(4.0), ValueError, "num_features", "positive int")
    expect(lambda: make(4, eps=-1), ValueError, "eps", ">= 0")
    if name != "FrozenBatchNorm":  # no momentum: its statistics never move after the first batch
        expect(lambda: make(4, momentum=1.5), ValueError, "momentum", "[0, 1]", "CS231n")
    layer = make(4)
    expect(lambda: layer(torch.randn(8, 5)), ValueError, f"{name}(4)", "5 channels", "dim 1")
    expect(lambda: layer(torch.randn(8)), ValueError, f"{name}(4)", "(N, C)")
    expect(lambda: layer(torch.zeros(8, 4, dtype=torch.uint8)), TypeError, f"{name}(4)", "x.float() / 255")
    expect(lambda: layer(torch.randn(8, 4).double()), TypeError, f"{name}(4)", "model.double()")
    expect(lambda: layer(np.zeros((8, 4), dtype=np.float32)), TypeError, name, "torch.from_numpy")
    expect(lambda: layer(torch.randn(1, 4)), ValueError, "more than 1 value", "model.eval()")


@pytest.mark.parametrize("call,error,words", cases({
    "LpNorm p=3": (lambda: layers.LpNorm(4, p=3), ValueError, ["p must be 1, 2 or math.inf", "got 3"]),
    "LpNorm p='x'": (lambda: layers.LpNorm(4, p="x"), ValueError, ["p must be 1, 2 or math.inf", "'x'"]),
    "LpNorm momentum 2": (lambda: layers.LpNorm(4, momentum=2), ValueError, ["momentum", "[0, 1]", "got 2"]),
    "LpNorm momentum None": (lambda: layers.LpNorm(4, momentum=None), TypeError, ["momentum", "None is not accepted"]),
    "LpNorm(-3)": (lambda: layers.LpNorm(-3), ValueError, ["num_features", "positive int"]),
    "NoiseInjection(-1)": (lambda: layers.NoiseInjection(-1), ValueError, ["num_features", "positive int"]),
    "LpNorm uint8": (lambda: layers.LpNorm(4)(torch.zeros(8, 4, dtype=torch.uint8)), TypeError, ["LpNorm(4)", "x.float()"]),
    "LayerNorm(0)": (lambda: layers.LayerNorm(0), ValueError, ["normalized_shape", "positive int"]),
    "LayerNorm('a')": (lambda: layers.LayerNorm("a"), ValueError, ["normalized_shape", "positive int"]),
    "LayerNorm eps": (lambda: layers.LayerNorm(4, eps=-1), ValueError, ["eps", ">= 0"]),
    "LayerNorm shape": (lambda: layers.LayerNorm(5)(torch.randn(8, 4)), ValueError, ["LayerNorm(5,)", "must be (5,)"]),
    "LayerNorm uint8": (lambda: layers.LayerNorm(4)(torch.zeros(8, 4, dtype=torch.uint8)), TypeError, ["LayerNorm", "x.float()"]),
    "GroupNorm groups": (lambda: layers.GroupNorm(3, 4), ValueError, ["num_groups=3", "divide num_channels=4", "gcd"]),
    "GroupNorm channels": (lambda: layers.GroupNorm(1, 0), ValueError, ["num_channels", "positive int"]),
    "GroupNorm input": (lambda: layers.GroupNorm(2, 6)(torch.randn(8, 4)), ValueError, ["GroupNorm(2, 6)", "dim 1"]),
    "GroupNorm uint8": (lambda: layers.GroupNorm(2, 4)(torch.zeros(8, 4, dtype=torch.uint8)), TypeError,
                        ["GroupNorm(2, 4)", "x.float()"]),
    "noise magnitudes": (lambda: layers.NoisyBatchNorm(4, mean_range=-1), ValueError, ["mean_range=-1", ">= 0"]),
    "noise scale_range": (lambda: layers.NoisyBatchNorm(4, scale_range=(2, 1)), ValueError, ["scale_range", "low <= high"]),
    "ghost virtual batch": (lambda: layers.GhostBatchNorm(4, virtual_batch_size=1), ValueError, ["virtual_batch_size", ">= 2"]),
    "ghost virtual batch 2.5": (lambda: layers.GhostBatchNorm(4, virtual_batch_size=2.5), TypeError,
                                ["virtual_batch_size", "an int"]),
    "ghost batch multiple": (lambda: layers.GhostBatchNorm(4, virtual_batch_size=4)(torch.randn(7, 4)), ValueError,
                             ["batch of 7", "multiple of 4"]),
    "batchnorm_train numpy": (lambda: layers.batchnorm_train(np.zeros((4, 3)), None, None, 1e-5), TypeError,
                              ["batchnorm_train", "torch.from_numpy"]),
    "batchnorm_train weight only": (lambda: layers.batchnorm_train(torch.randn(4, 3), torch.ones(3), None, 1e-5),
                                    ValueError, ["weight", "bias", "or neither"]),
    "batchnorm_layers not a model": (lambda: layers.batchnorm_layers(3), TypeError, ["model", "nn.Module"]),
    "recompute numpy": (lambda: layers.recompute_population_statistics(
        models.mlp(widths=(4,), in_features=4, norm="bn"), np.zeros((100, 4), dtype=np.float32)), TypeError,
        ["x", "torch.from_numpy"]),
    "recompute wrong width": (lambda: layers.recompute_population_statistics(
        models.mlp(widths=(4,), in_features=4, norm="bn"), torch.zeros(100, 5)), ValueError,
        ["x of shape (100, 5)", "built for"]),
    "algorithm1_noise numpy": (lambda: layers.algorithm1_noise(np.zeros((4, 2))), TypeError, ["torch.from_numpy"]),
    "make_norm unknown": (lambda: layers.make_norm("batchnorm", 4), ValueError, ["'batchnorm'", "'bn'"]),
    "make_norm misspelt kw": (lambda: layers.make_norm("bn", 4, momentom=0.1), TypeError, ["'momentom'", "norm_kwargs"]),
    "recompute without BN": (lambda: layers.recompute_population_statistics(nn.Linear(4, 4), torch.randn(8, 4)),
                             ValueError, ["no batch-norm layer"]),
    "recompute batch 1": (lambda: layers.recompute_population_statistics(
        models.mlp(widths=(4,), in_features=4, norm="bn"), torch.randn(80, 4), batch_size=1), ValueError,
        ["batch_size", ">= 2"]),
}))
def test_other_layers(call, error, words):
    expect(call, error, *words)


# --------------------------------------------------------------------------- models

@pytest.mark.parametrize("call,error,words", cases({
    "widths an int": (lambda: models.mlp(widths=100), ValueError, ["widths", "(100,)"]),
    "widths floats": (lambda: models.mlp(widths=(100.5,)), ValueError, ["widths", "positive ints"]),
    "widths empty": (lambda: models.mlp(widths=()), ValueError, ["widths", "non-empty"]),
    "activation": (lambda: models.mlp(activation="softmax"), ValueError, ["'softmax'", "sigmoid"]),
    "norm": (lambda: models.mlp(norm="batchnorm"), ValueError, ["'batchnorm'", "'bn'"]),
    "placement": (lambda: models.mlp(norm="bn", placement="middle"), ValueError, ["placement", "'before'"]),
    "init": (lambda: models.mlp(init="kaiming"), ValueError, ["'kaiming'", "he"]),
    "init and init_std": (lambda: models.mlp(init="he", init_std=0.1), ValueError, ["init", "init_std", "not both"]),
    "init_std": (lambda: models.mlp(init_std=-1), ValueError, ["init_std", "positive"]),
    "in_features 0": (lambda: models.mlp(in_features=0), ValueError, ["in_features", ">= 1", "784"]),
    "num_classes float": (lambda: models.mlp(num_classes=1.5), TypeError, ["num_classes", "int"]),
    "norm_kwargs list": (lambda: models.mlp(norm="bn", norm_kwargs=[0.1]), TypeError, ["norm_kwargs", "dict"]),
    "norm_kwargs misspelt": (lambda: models.mlp(norm="bn", norm_kwargs={"momentom": 0.1}), TypeError,
                             ["'momentom'", "norm_kwargs"]),
    "dropout 1": (lambda: models.mlp(dropout=1.0), ValueError, ["dropout", "[0, 1)"]),
    "deep_linear depth 0": (lambda: models.deep_linear(depth=0), ValueError, ["depth", ">= 1"]),
    "deep_linear depth float": (lambda: models.deep_linear(depth=2.5), TypeError, ["depth", "int"]),
    "deep_linear init_std": (lambda: models.deep_linear(init_std=0), ValueError, ["init_std", "positive"]),
    "dln_data n=1": (lambda: models.dln_data(n=1), ValueError, ["n >= 2", "n=1"]),
    "dln_loss shapes": (lambda: models.dln_loss(torch.zeros(3, 2), torch.zeros(3, 3)), ValueError, ["same shape"]),
    "lsuv numpy": (lambda: models.lsuv(models.mlp(), np.zeros((10, 784))), TypeError, ["x", "tensor"]),
    "lsuv wrong width": (lambda: models.lsuv(models.mlp(), torch.rand(10, 5)), ValueError, ["x of shape (10, 5)",
                                                                                          "in_features"]),
    "lsuv tol": (lambda: models.lsuv(models.mlp(), torch.rand(100, 784), tol=0), ValueError, ["tol", "positive"]),
    "lsuv on a BN net": (lambda: models.lsuv(models.mlp(norm="bn"), torch.rand(100, 784)), ValueError,
                         ["without normalization"]),
}))
def test_models(call, error, words):
    expect(call, error, *words)


# --------------------------------------------------------------------------- data

@pytest.mark.parametrize("call,error,words", cases({
    "unknown name": (lambda: bdata.load("cifar10"), ValueError, ["'cifar10'", "fashion-mnist"]),
    "name not a str": (lambda: bdata.load(3), TypeError, ["name", "fashion-mnist"]),
    "root not a path": (lambda: bdata.load(root=3), TypeError, ["root", "folder path"]),
    "find unknown": (lambda: bdata.find("cifar"), ValueError, ["'cifar'", "mnist"]),
    "fetch root not a path": (lambda: bdata.fetch(root=["a"]), TypeError, ["root", "folder path"]),
}))
def test_data(call, error, words):
    expect(call, error, *words)


# --------------------------------------------------------------------------- functional (NumPy)

X = np.random.default_rng(0).standard_normal((6, 3))
G, B = np.ones(3), np.zeros(3)


@pytest.mark.parametrize("call,words", cases({
    "forward 1-D x": (lambda: F.batchnorm_forward(np.zeros(4), G, B), ["x", "2-D", "(N, D)"]),
    "forward 4-D x": (lambda: F.batchnorm_forward(np.zeros((4, 3, 2, 2)), G, B), ["spatial_batchnorm_forward"]),
    "forward int x": (lambda: F.batchnorm_forward(X.astype(int), G, B), ["x", "astype(np.float64)"]),
    "forward object x": (lambda: F.batchnorm_forward(np.array([[1, None]]), G, B), ["x", "numeric"]),
    "forward torch x with grad": (lambda: F.batchnorm_forward(torch.ones(4, 3, requires_grad=True), G, B),
                                  ["x", ".detach().numpy()"]),
    "forward x None": (lambda: F.batchnorm_forward(None, G, B), ["x", "NumPy array"]),
    "forward one example": (lambda: F.batchnorm_forward(X[:1], G, B), ["at least 2", "batchnorm_inference"]),
    "forward gamma shape": (lambda: F.batchnorm_forward(X, np.ones(2), B), ["gamma", "(3,)", "np.ones(3)"]),
    "forward beta None": (lambda: F.batchnorm_forward(X, G, None), ["beta", "(3,)"]),
    "forward gamma str": (lambda: F.batchnorm_forward(X, "ones", B), ["gamma"]),
    "forward NaN": (lambda: F.batchnorm_forward(X * np.nan, G, B), ["x", "non-finite"]),
    "forward eps -1": (lambda: F.batchnorm_forward(X, G, B, eps=-1), ["eps", ">= 0", "1e-5"]),
    "forward eps str": (lambda: F.batchnorm_forward(X, G, B, eps="1e-5"), ["eps", "number"]),
    "backward dout shape": (lambda: F.batchnorm_backward(np.ones((6, 2)), F.batchnorm_forward(X, G, B)[1]),
                            ["dout", "(6, 3)", "must match"]),
    "backward dout int": (lambda: F.batchnorm_backward_alt(np.ones((6, 3), dtype=int), F.batchnorm_forward(X, G, B)[1]),
                          ["dout", "astype(np.float64)"]),
    "backward cache tuple": (lambda: F.batchnorm_backward(np.ones((6, 3)), (1, 2)), ["cache", "batchnorm_forward"]),
    "backward arguments swapped": (lambda: F.batchnorm_backward(F.batchnorm_forward(X, G, B)[1], np.ones((6, 3))),
                                   ["cache", "batchnorm_forward"]),
    "backward layernorm cache": (lambda: F.batchnorm_backward(np.ones((6, 3)), F.layernorm_forward(X, G, B)[1]),
                                 ["layernorm_forward", "batchnorm_forward"]),
    "nodes layernorm cache": (lambda: F.batchnorm_backward_nodes(np.ones((6, 3)), F.layernorm_forward(X, G, B)[1]),
                              ["layernorm_forward"]),
    "inference running_var negative": (lambda: F.batchnorm_inference(X, G, B, np.zeros(3), -np.ones(3)),
                                       ["running_var", ">= 0"]),
    "inference eps=0 zero variance": (lambda: F.batchnorm_inference(X, G, B, np.zeros(3), np.array([1.0, 0.0, 1.0]),
                                                                    eps=0.0), ["eps=0", "feature 1", "eps > 0"]),
    "inference running_mean shape": (lambda: F.batchnorm_inference(X, G, B, np.zeros(2), np.ones(3)),
                                     ["running_mean", "(3,)"]),
    "layernorm eps=0 constant": (lambda: F.layernorm_forward(np.ones((2, 3)), G, B, eps=0.0), ["eps > 0"]),
    "layernorm_backward bn cache": (lambda: F.layernorm_backward(np.ones((6, 3)), F.batchnorm_forward(X, G, B)[1]),
                                    ["batchnorm_forward", "layernorm_forward"]),
    "groupnorm groups": (lambda: F.groupnorm_forward(X, G, B, num_groups=2), ["num_groups=2", "divisor"]),
    "groupnorm_backward ln cache": (lambda: F.groupnorm_backward(np.ones((6, 3)), F.layernorm_forward(X, G, B)[1]),
                                    ["layernorm_forward", "groupnorm_forward"]),
    "spatial 2-D x": (lambda: F.spatial_batchnorm_forward(X, G, B), ["x", "4-D", "(N, C, H, W)"]),
    "spatial one value": (lambda: F.spatial_batchnorm_forward(np.ones((1, 3, 1, 1)), G, B), ["N·H·W >= 2"]),
    "spatial gamma shape": (lambda: F.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(4), B), ["gamma", "(3,)"]),
    "spatial_backward bn cache": (lambda: F.spatial_batchnorm_backward(np.ones((6, 3)), F.batchnorm_forward(X, G, B)[1]),
                                  ["spatial_batchnorm_forward"]),
    "spatial_backward dout shape": (lambda: F.spatial_batchnorm_backward(
        np.ones((2, 3, 2, 1)), F.spatial_batchnorm_forward(np.random.rand(2, 3, 2, 2), G, B)[1]), ["dout", "must match"]),
    "update momentum 1.5": (lambda: F.update_running_stats(G, G, G, G, 4, momentum=1.5), ["momentum", "(0, 1]", "CS231n"]),
    "update m float": (lambda: F.update_running_stats(G, G, G, G, 4.0), ["m", "positive int"]),
    "update m=1 unbiased": (lambda: F.update_running_stats(G, G, G, G, 1), ["m >= 2", "unbiased=False"]),
    "update shapes": (lambda: F.update_running_stats(G, G, np.ones(2), G, 4), ["batch_mean", "(2,)", "(3,)"]),
    "update negative var": (lambda: F.update_running_stats(G, G, G, -G, 4), ["batch_var", ">= 0"]),
    "RunningStats momentum": (lambda: F.RunningStats(3, momentum=1.5), ["momentum", "(0, 1]"]),
    "RunningStats features": (lambda: F.RunningStats(0), ["num_features", ">= 1"]),
    "RunningStats update shape": (lambda: F.RunningStats(3).update(np.ones((4, 2))), ["2 features", "track 3"]),
}))
def test_functional(call, words):
    expect(call, ValueError, *words)


# --------------------------------------------------------------------------- check (homework checkers)

CHECKERS = [check.batchnorm_forward, check.batchnorm_backward, check.batchnorm_backward_alt,
            check.batchnorm_inference, check.layernorm_forward, check.layernorm_backward,
            check.update_running_stats, check.spatial_batchnorm_forward, check.spatial_batchnorm_backward,
            check.groupnorm_forward, check.groupnorm_backward, check.batchnorm_backward_nodes]


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.__name__)
def test_checkers_refuse_a_result_instead_of_a_function(checker):
    """The commonest slip: check.batchnorm_forward(my_forward(x, ...)) instead of check.batchnorm_forward(my_forward)."""
    expect(lambda: checker((np.zeros(3), {})), TypeError, "student_fn", "your function itself")


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.__name__)
def test_checkers_refuse_a_bad_tolerance(checker):
    expect(lambda: checker(lambda *a: None, tol=0), ValueError, "tol", "1e-6")


@pytest.mark.parametrize("checker", [c for c in CHECKERS if "backward" in c.__name__], ids=lambda c: c.__name__)
def test_backward_checkers_refuse_a_bad_forward(checker):
    expect(lambda: checker(lambda d, c: None, forward="mine"), TypeError, "forward", "your function itself")


def test_groupnorm_groups_needs_a_feature_count():
    expect(lambda: check.groupnorm_groups(0), ValueError, "d", "positive int")


def test_a_crashing_student_function_is_reported_not_raised():
    def student(x, gamma, beta, eps=1e-5):
        raise ZeroDivisionError("oops")
    result = check.batchnorm_forward(student, verbose=False)
    assert not result.passed and "raised ZeroDivisionError: oops" in result.message


# --------------------------------------------------------------------------- probes

@pytest.fixture(scope="module")
def probe_setup():
    torch.manual_seed(0)
    model = models.mlp(widths=(8, 8), in_features=12, norm="bn")
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 12, generator=g), torch.randint(0, 10, (32,), generator=g)
    return model, x, y, probes.batch_loss(nn.functional.cross_entropy, x, y)


def _hvp_with(model, loss_of, vector):
    with probes.preserved_state(model):  # the forward pass in train mode would move the running statistics
        params = list(model.parameters())
        vector = [torch.zeros_like(p) for p in params] if vector is None else vector
        return probes.hessian_vector_product(loss_of(model), params, vector)


PROBE_CASES = {
    "model is the factory": (lambda m, x, y, lo: probes.activation_modules(models.mlp), TypeError,
                             ["model", "nn.Module", "models.mlp()"]),
    "record numpy x": (lambda m, x, y, lo: probes.record(m, x.numpy(), ["act1"]), TypeError,
                       ["x", "torch.from_numpy(x).float()"]),
    "record unknown module": (lambda m, x, y, lo: probes.record(m, x, ["act9"]), ValueError, ["'act9'", "act1"]),
    "record modules a string": (lambda m, x, y, lo: probes.record(m, x, "act1"), TypeError, ["modules", "['act1']"]),
    "record mode": (lambda m, x, y, lo: probes.record(m, x, ["act1"], mode="training"), ValueError, ["mode", "'eval'"]),
    "record wrong width": (lambda m, x, y, lo: probes.record(m, torch.randn(4, 5), ["act1"]), ValueError,
                           ["x of shape (4, 5)", "model's training inputs"]),
    "record_inputs unknown": (lambda m, x, y, lo: probes.record_inputs(m, x, ["nope"]), ValueError, ["'nope'"]),
    "unit_percentiles q": (lambda m, x, y, lo: probes.unit_percentiles(x, q=(50, 150)), ValueError, ["[0, 100]"]),
    "unit_percentiles numpy": (lambda m, x, y, lo: probes.unit_percentiles(x.numpy()), TypeError, ["z", "torch.from_numpy"]),
    "layer_stats threshold": (lambda m, x, y, lo: probes.layer_stats(x, threshold=-1), ValueError, ["threshold", "positive"]),
    "activation_stats mode": (lambda m, x, y, lo: probes.activation_stats(m, x, mode="x"), ValueError, ["mode"]),
    "probe_batch a tuple": (lambda m, x, y, lo: probes.probe_batch((x, y, x, y)), TypeError, ["data", "bnlab.data.load()"]),
    "InputPercentiles every": (lambda m, x, y, lo: probes.InputPercentiles(x, every=0), ValueError, ["every", ">= 1", "steps between"]),
    "ActivationStats every": (lambda m, x, y, lo: probes.ActivationStats(x, every=-1), ValueError, ["every", ">= 1"]),
    "ActivationStats every 2.5": (lambda m, x, y, lo: probes.ActivationStats(x, every=2.5), TypeError, ["every", "an int"]),
    "GradientNorms every": (lambda m, x, y, lo: probes.GradientNorms(every=0), ValueError, ["every", ">= 1"]),
    "gradient_norms float labels": (lambda m, x, y, lo: probes.gradient_norms(m, x, y.float()), TypeError,
                                    ["y", "y.long()"]),
    "gradient_norms params": (lambda m, x, y, lo: probes.gradient_norms(m, x, y, params="bias"), ValueError,
                              ["params", "'weights' or 'all'"]),
    "growth_per_layer one": (lambda m, x, y, lo: probes.growth_per_layer([1.0]), ValueError, ["at least 2 layers"]),
    "growth_per_layer negative": (lambda m, x, y, lo: probes.growth_per_layer([1.0, -2.0]), ValueError, ["positive"]),
    "ics lr": (lambda m, x, y, lo: probes.ics(m, (x, y), lr=0), ValueError, ["lr", "positive"]),
    "ics x only": (lambda m, x, y, lo: probes.ics(m, x, lr=0.1), TypeError, ["batch", "(x, y)"]),
    "ics_probe every": (lambda m, x, y, lo: probes.ics_probe(every=0), ValueError, ["every"]),
    "layer_groups not a model": (lambda m, x, y, lo: probes.layer_groups(3), TypeError, ["model", "nn.Module"]),
    "landscape lr": (lambda m, x, y, lo: probes.landscape(m, lo, lr=-1), ValueError, ["lr", "positive"]),
    "landscape multipliers": (lambda m, x, y, lo: probes.landscape(m, lo, lr=0.1, multipliers=()), ValueError,
                              ["multipliers", "non-empty"]),
    "landscape loss_of": (lambda m, x, y, lo: probes.landscape(m, 3, lr=0.1), TypeError, ["loss_of", "batch_loss"]),
    "landscape_probe every": (lambda m, x, y, lo: probes.landscape_probe(every=0), ValueError, ["every", ">= 1"]),
    "landscape_probe every True": (lambda m, x, y, lo: probes.landscape_probe(every=True), TypeError, ["every", "an int"]),
    "batch_loss numpy": (lambda m, x, y, lo: probes.batch_loss(nn.functional.cross_entropy, x.numpy(), y), TypeError,
                         ["x", "torch.from_numpy"]),
    "batch_loss loss_fn": (lambda m, x, y, lo: probes.batch_loss("ce", x, y), TypeError, ["loss_fn", "cross_entropy"]),
    "bn_gradient_terms without BN": (lambda m, x, y, lo: probes.bn_gradient_terms(
        models.mlp(widths=(8,), in_features=12), lo), ValueError, ["no batch-normalization layer"]),
    "bn_gradient_probe every": (lambda m, x, y, lo: probes.bn_gradient_probe(every=0), ValueError, ["every"]),
    "top eigenvalue iters": (lambda m, x, y, lo: probes.top_hessian_eigenvalue(m, lo, iters=0), ValueError,
                             ["iters", ">= 1"]),
    "top eigenvalue tol": (lambda m, x, y, lo: probes.top_hessian_eigenvalue(m, lo, tol=-1), ValueError, ["tol", ">= 0"]),
    "top eigenvalue loss_of": (lambda m, x, y, lo: probes.top_hessian_eigenvalue(m, x), TypeError, ["loss_of"]),
    "top eigenvalue mode": (lambda m, x, y, lo: probes.top_hessian_eigenvalue(m, lo, mode="training"), ValueError,
                            ["mode"]),
    "top eigenvalue nothing trainable": (lambda m, x, y, lo: probes.top_hessian_eigenvalue(m, lo, params=[]),
                                         ValueError, ["no parameters that require a gradient"]),
    "hvp vector shapes": (lambda m, x, y, lo: _hvp_with(m, lo, [torch.zeros(3)]), ValueError,
                          ["vector", "shaped like each parameter"]),
    "hvp loss not scalar": (lambda m, x, y, lo: _hvp_with(m, lambda model: model(x), None), ValueError,
                            ["loss", "scalar"]),
    "Sharpness numpy": (lambda m, x, y, lo: probes.Sharpness(x.numpy(), y), TypeError, ["x", "torch.from_numpy"]),
    "Sharpness iters": (lambda m, x, y, lo: probes.Sharpness(x, y, iters=0), ValueError, ["iters", ">= 1"]),
    "Sharpness lengths": (lambda m, x, y, lo: probes.Sharpness(x, y[:-1]), ValueError, ["x and y", "32 vs 31"]),
    "evaluate statistics": (lambda m, x, y, lo: probes.evaluate(m, x, y, statistics="population"), ValueError,
                            ["statistics", "'running'", "'batch'"]),
    "evaluate batch_size": (lambda m, x, y, lo: probes.evaluate(m, x, y, batch_size=0), ValueError, ["batch_size", ">= 1"]),
    "evaluate float labels": (lambda m, x, y, lo: probes.evaluate(m, x, y.float()), TypeError, ["y", "y.long()"]),
    "with_population_statistics batch": (lambda m, x, y, lo: probes.with_population_statistics(m, x, x, y, batch_size=1),
                                         ValueError, ["batch_size", ">= 2"]),
    "final not callable": (lambda m, x, y, lo: probes.final(3), TypeError, ["fn", "lambda model"]),
    "batch_statistics m": (lambda m, x, y, lo: probes.batch_statistics(x[:, 0], m=1), ValueError, ["m", ">= 2"]),
    "batch_statistics num_batches": (lambda m, x, y, lo: probes.batch_statistics(x[:, 0], m=4, num_batches=0),
                                     ValueError, ["num_batches", ">= 1"]),
    "batch_statistics numpy": (lambda m, x, y, lo: probes.batch_statistics(x[:, 0].numpy(), m=4), TypeError,
                               ["values", "torch.from_numpy"]),
    "batch_mean_std m": (lambda m, x, y, lo: probes.batch_mean_std(1.0, 0), ValueError, ["m", ">= 1"]),
    "batch_variance_std m": (lambda m, x, y, lo: probes.batch_variance_std(1.0, 3.0, 1), ValueError, ["m", ">= 2"]),
    "dropout_variance_ratio keep": (lambda m, x, y, lo: probes.dropout_variance_ratio(0.0, 1.0, 0.0), ValueError,
                                    ["keep", "(0, 1]"]),
    "unit_drifts shapes": (lambda m, x, y, lo: probes.unit_drifts(np.arange(5), np.ones((4, 3, 3))), ValueError,
                           ["steps (K,)", "(K, P, C)"]),
    "typical_unit empty": (lambda m, x, y, lo: probes.typical_unit(np.array([])), ValueError, ["non-empty"]),
    "window_means window": (lambda m, x, y, lo: probes.window_means([0, 1], [1.0, 2.0], [1], 0), ValueError,
                            ["window", "positive"]),
    "stack_records empty": (lambda m, x, y, lo: probes.stack_records([]), ValueError, ["did the probe run?"]),
    "stack_ics empty": (lambda m, x, y, lo: probes.stack_ics([]), ValueError, ["did the probe run?"]),
    "jacobian_spectra statistics": (lambda m, x, y, lo: probes.jacobian_spectra(m, x, statistics="batch2"),
                                    ValueError, ["statistics", "'frozen'", "'batch'"]),
    "jacobian_spectra numpy": (lambda m, x, y, lo: probes.jacobian_spectra(m, x.numpy()), TypeError, ["x", "torch.from_numpy"]),
    "input_output_jacobian examples": (lambda m, x, y, lo: probes.input_output_jacobian(m, x, examples=0), ValueError,
                                       ["examples", "batch size 32"]),
    "frozen_statistics one example": (lambda m, x, y, lo: probes.frozen_statistics(m, x[:1]), ValueError,
                                      ["at least 2 examples"]),
    "blocks not a model": (lambda m, x, y, lo: probes.blocks(3), TypeError, ["nn.Sequential", "models.mlp"]),
    "preserved_state not a model": (lambda m, x, y, lo: probes.preserved_state(3).__enter__(), TypeError,
                                    ["model", "nn.Module"]),
}


@pytest.mark.parametrize("call,error,words", cases(PROBE_CASES))
def test_probes(probe_setup, call, error, words):
    model = probe_setup[0]
    before = [p.detach().clone() for p in model.parameters()] + [b.clone() for b in model.buffers()]
    expect(lambda: call(*probe_setup), error, *words)
    after = list(model.parameters()) + list(model.buffers())
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # a refused probe leaves the model alone
