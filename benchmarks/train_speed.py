"""How fast is ``bnlab.train.fit``? ms per SGD step, against two hand-written loops.

Compares, on the same in-memory Fashion-MNIST tensors and the same model
(784-100-100-100-10 sigmoid MLP, batch 60, plain SGD), with and without BN:

- ``fit``        bnlab.train.fit (evaluation and progress bar off, loss recorded every step)
- ``minimal``    a minimal hand-written loop: index a shuffled permutation, forward, backward, step
- ``loader``     DataLoader(TensorDataset(x, y), batch_size=60, shuffle=True) over the same tensors
- ``torchvision`` the textbook idiom: DataLoader(torchvision.datasets.FashionMNIST(...,
                  transform=ToTensor()), batch_size=60, shuffle=True), images decoded per sample

Run: python benchmarks/train_speed.py [--steps 3000] [--repeats 3]
Targets: fit within 1.15x of minimal, and at least 3x faster than the DataLoader idioms.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bnlab import data as bdata
from bnlab import models, train


def make(norm: str | None) -> nn.Module:
    torch.manual_seed(0)
    return models.mlp(norm=norm, init_std=0.01)


def time_fit(ds: bdata.Dataset, norm: str | None, steps: int) -> float:
    start = time.perf_counter()
    train.fit(make(norm), ds, steps=steps, lr=0.5, eval_every=10 * steps, progress=False)
    return time.perf_counter() - start


def time_minimal(ds: bdata.Dataset, norm: str | None, steps: int) -> float:
    model = make(norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x_all, y_all = ds.x_train, ds.y_train
    start = time.perf_counter()
    perm = torch.randperm(len(x_all))
    for step in range(steps):
        i = (step * 60) % (len(x_all) - 60)
        idx = perm[i:i + 60]
        loss = nn.functional.cross_entropy(model(x_all.index_select(0, idx)), y_all.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _time_loader(loader: DataLoader, norm: str | None, steps: int) -> float:
    model = make(norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    start = time.perf_counter()
    done = 0
    while done < steps:
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def time_tensor_loader(ds: bdata.Dataset, norm: str | None, steps: int) -> float:
    loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=60, shuffle=True)
    return _time_loader(loader, norm, steps)


def time_torchvision_loader(ds: bdata.Dataset, norm: str | None, steps: int) -> float:
    from torchvision import datasets, transforms

    root = ds.source.parent.parent  # <root>/FashionMNIST/raw -> <root>
    tv = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(tv, batch_size=60, shuffle=True)
    return _time_loader(loader, norm, steps)


METHODS = (("fit", time_fit), ("minimal", time_minimal), ("loader", time_tensor_loader),
           ("torchvision", time_torchvision_loader))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    ds = bdata.load("fashion-mnist")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, best of {args.repeats}")
    print("ms per step (lower is better) and ratios")
    print(f"| model | fit | minimal | loader | torchvision | fit/minimal | loader/fit | torchvision/fit |")
    print(f"|---|---|---|---|---|---|---|---|")
    for norm in (None, "bn"):
        seconds: dict[str, list[float]] = {name: [] for name, _ in METHODS}
        for _ in range(args.repeats):  # interleaved, so a busy moment hits every method alike
            for name, fn in METHODS:
                seconds[name].append(fn(ds, norm, args.steps))
        ms = {name: min(t) / args.steps * 1e3 for name, t in seconds.items()}
        print(f"| {'BN' if norm else 'plain'} | {ms['fit']:.3f} | {ms['minimal']:.3f} | {ms['loader']:.3f} | "
              f"{ms['torchvision']:.3f} | {ms['fit'] / ms['minimal']:.2f}x | {ms['loader'] / ms['fit']:.1f}x | "
              f"{ms['torchvision'] / ms['fit']:.1f}x |")


if __name__ == "__main__":
    main()
