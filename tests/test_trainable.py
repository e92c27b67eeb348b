"""bnlab.trainable.train_only: what trains, what stays bit-identical under fit, errors."""
from __future__ import annotations

import pytest
import torch

from bnlab import models, train, trainable


def tiny_data(n: int = 120, d: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    return x[:96], y[:96], x[96:], y[96:]


def bn_net() -> torch.nn.Module:
    return models.mlp(widths=(16, 16), activation="relu", norm="bn", in_features=12, num_classes=4)


def trained(which: str, **kw):
    model = trainable.train_only(bn_net(), which, **kw)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train.fit(model, tiny_data(), steps=20, lr=0.5, batch_size=16, progress=False)
    after = {n: p.detach() for n, p in model.named_parameters()}
    return model, before, after


def moved(before, after) -> set[str]:
    return {n for n in before if not torch.equal(before[n], after[n])}


def test_bn_affine_trains_only_gamma_beta_and_freezes_the_rest_bit_for_bit():
    model, before, after = trained("bn_affine")
    affine = set(trainable.bn_affine_names(model))
    assert affine == {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}
    assert moved(before, after) == affine
    assert trainable.trainable_count(model) == 4 * 16


def test_output_trains_only_the_output_layer():
    model, before, after = trained("output")
    assert moved(before, after) == {"out.weight", "out.bias"}
    assert trainable.trainable_count(model) == 16 * 4 + 4


def test_random_subset_trains_exactly_count_entries_and_leaves_the_others_bit_identical():
    model, before, after = trained("random", seed=3)
    n_affine = 4 * 16
    assert trainable.trainable_count(model) == n_affine  # default count: as many as γ and β
    changed = sum(int((before[n] != after[n]).sum()) for n in before)
    assert 0 < changed <= n_affine
    for name, p in model.named_parameters():
        mask = getattr(p, "_train_mask", None)
        if mask is None:
            assert torch.equal(before[name], after[name]), name  # wholly frozen tensor
        else:
            assert torch.equal(before[name][~mask], after[name][~mask]), name
    assert not any(n.startswith("norm") and n in moved(before, after) for n in before)


def test_random_per_unit_trains_two_incoming_weights_of_every_hidden_unit():
    model, before, after = trained("random_per_unit", seed=1)
    assert trainable.trainable_count(model) == 4 * 16  # as many as γ and β: 2 per hidden unit
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc1.weight", "fc2.weight"}
    for name in ("fc1.weight", "fc2.weight"):
        mask = model.get_parameter(name)._train_mask
        assert (mask.sum(dim=1) == 2).all()  # per output unit
        assert torch.equal(before[name][~mask], after[name][~mask])
        assert not torch.equal(before[name][mask], after[name][mask])
    assert moved(before, after) == {"fc1.weight", "fc2.weight"}
    with pytest.raises(ValueError, match="per_unit must be between"):
        trainable.train_only(bn_net(), "random_per_unit", per_unit=13)


def test_random_subset_depends_on_its_seed_only():
    masks = [[getattr(p, "_train_mask", None) for p in trainable.train_only(bn_net(), "random", seed=s).parameters()]
             for s in (0, 0, 1)]
    same = all((a is None and b is None) or torch.equal(a, b) for a, b in zip(masks[0], masks[1]))
    differ = any(a is not None and b is not None and not torch.equal(a, b) for a, b in zip(masks[0], masks[2]))
    assert same and differ


def test_all_but_beta_keeps_beta_at_zero():
    model, before, after = trained("all_but_beta")
    assert torch.count_nonzero(after["norm1.bias"]) == 0 and torch.count_nonzero(after["norm2.bias"]) == 0
    assert "fc1.weight" in moved(before, after) and "norm1.weight" in moved(before, after)


def test_all_trains_everything():
    model, before, after = trained("all")
    assert moved(before, after) == set(before)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="which must be one of"):
        trainable.train_only(bn_net(), "gamma")
    with pytest.raises(ValueError, match="needs normalization layers"):
        trainable.train_only(models.mlp(widths=(4,)), "bn_affine")
    with pytest.raises(ValueError, match="count must be between"):
        trainable.train_only(bn_net(), "random", count=10**9)
    with pytest.raises(ValueError, match="output layer"):
        trainable.train_only(bn_net(), "output", output="head")


def test_a_second_call_replaces_the_first_choice():
    model = models.mlp(widths=(16, 16), norm="bn")
    trainable.train_only(model, "random", seed=1)
    trainable.train_only(model, "all")
    assert trainable.trainable_count(model) == sum(p.numel() for p in model.parameters())
    loss = model(torch.rand(8, 784)).sum()
    loss.backward()
    assert (model.fc1.weight.grad != 0).float().mean() > 0.9   # no stale mask zeroing most entries
