"""bnlab.quick / is_quick / seed_everything / resolve_device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bnlab


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_quick_reads_bnlab_quick(monkeypatch, value, expected):
    monkeypatch.setenv("BNLAB_QUICK", value)
    assert bnlab.is_quick() is expected
    assert bnlab.quick(full=50_000, quick=1_000) == (1_000 if expected else 50_000)


def test_quick_unset_means_full(monkeypatch):
    monkeypatch.delenv("BNLAB_QUICK", raising=False)
    assert bnlab.quick(full="full", quick="quick") == "full"


def test_quick_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("BNLAB_QUICK", "maybe")
    with pytest.raises(ValueError, match="BNLAB_QUICK='maybe'"):
        bnlab.is_quick()


def test_seed_everything_repeats_all_generators():
    bnlab.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    bnlab.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_resolve_device():
    assert bnlab.resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert bnlab.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            bnlab.resolve_device("cuda")
