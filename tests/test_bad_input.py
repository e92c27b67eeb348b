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
