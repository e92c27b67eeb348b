"""Shared fixtures: tiny IDX datasets written on the fly, and the real Fashion-MNIST."""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bnlab import data as bdata

IDX_FILES = bdata.FILES


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000080N, big-endian sizes)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def tiny_idx_set(n_train: int = 24, n_test: int = 12, seed: int = 0) -> dict[str, bytes]:
    """The four IDX files of a small random 28×28 dataset with labels 0..9."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 10),
    }


def write_raw(raw: Path, files: dict[str, bytes], gz: bool = False) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (raw / name).write_bytes(content)


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No BNLAB_DATA, an empty repo data/ and no Debian copy: bnlab sees only what a test puts."""
    repo = tmp_path / "repo_data"
    monkeypatch.delenv("BNLAB_DATA", raising=False)
    monkeypatch.setattr(bdata, "repo_data_dir", lambda: repo)
    spec = bdata.DATASETS["fashion-mnist"]
    monkeypatch.setitem(bdata.DATASETS, "fashion-mnist",
                        bdata._Spec(spec.torchvision_class, spec.classes, tmp_path / "debian",
                                    spec.debian_package, None))
    bdata._load_cached.cache_clear()
    yield tmp_path
    bdata._load_cached.cache_clear()


@pytest.fixture(scope="session")
def fmnist() -> bdata.Dataset:
    """The real Fashion-MNIST (CI installs Debian's dataset-fashion-mnist)."""
    return bdata.load("fashion-mnist")


@pytest.fixture(scope="session")
def small_fmnist(fmnist) -> bdata.Dataset:
    """First 6,000 training and 2,000 test images of Fashion-MNIST, for fast training tests."""
    return bdata.Dataset(fmnist.x_train[:6000], fmnist.y_train[:6000], fmnist.x_test[:2000],
                         fmnist.y_test[:2000], fmnist.classes, fmnist.name, fmnist.source)


def model_state(model: nn.Module) -> dict:
    """Everything a probe must leave untouched: parameters, grads, buffers, modes, RNG states."""
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state()[1].copy(),
        "py_rng": random.getstate(),
    }


def assert_same_state(a: dict, b: dict) -> None:
    """Two ``model_state`` snapshots are bit-identical."""
    for key in ("params", "buffers"):
        for u, v in zip(a[key], b[key]):
            assert torch.equal(u, v), key
    for u, v in zip(a["grads"], b["grads"]):
        assert (u is None and v is None) or torch.equal(u, v)
    assert a["modes"] == b["modes"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert np.array_equal(a["np_rng"], b["np_rng"]) and a["py_rng"] == b["py_rng"]
