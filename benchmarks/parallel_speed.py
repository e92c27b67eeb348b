"""Do parallel runs pay? Wall time of independent training runs, sequential vs in worker processes.

Four runs of the Figure-1 network (784-100-100-100-10 sigmoid MLP, init std 0.01,
lr 0.5, batch 60) for 3,000 steps each: two with BN, two without (seeds 0 and 1).
The same list of runs goes through ``bnlab.train.fit_many`` with ``workers=1``
(one after another, one thread) and with one worker per core (default), in one
process, alternating, best of ``--repeats``. It also checks that both give the same
numbers.

Run: python benchmarks/parallel_speed.py [--steps 3000] [--repeats 2] [--workers N]
Target on a 2-core machine: parallel ≤ 0.6 × sequential.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bnlab import data as bdata
from bnlab import models, parallel, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="default: one per core (or BNLAB_WORKERS)")
    args = ap.parse_args()
    ds = bdata.load("fashion-mnist")
    runs = train.grid(lambda norm: models.mlp(norm=norm, init_std=0.01), ds, seeds=[0, 1],
                      norm=["bn", None], lr=0.5, steps=args.steps, eval_every=args.steps)
    workers = parallel.resolve_workers(args.workers, len(runs))
    times: dict[str, list[float]] = {"sequential": [], "parallel": []}
    results = {}
    for _ in range(args.repeats):
        for name, w in (("sequential", 1), ("parallel", workers)):
            start = time.perf_counter()
            results[name] = train.fit_many(runs, workers=w, progress=False)
            times[name].append(time.perf_counter() - start)
    same = all(np.array_equal(a.train_loss, b.train_loss) and np.array_equal(a.test_acc, b.test_acc)
               for a, b in zip(results["sequential"], results["parallel"]))
    seq, par = min(times["sequential"]), min(times["parallel"])
    print(f"{len(runs)} runs x {args.steps} steps (Figure-1 MLP, BN and plain), {parallel.cpu_count()} cores, "
          f"best of {args.repeats}")
    print("| mode | workers | wall time (s) |")
    print("|---|---|---|")
    print(f"| sequential | 1 | {seq:.1f} |")
    print(f"| parallel | {workers} | {par:.1f} |")
    print(f"parallel / sequential = {par / seq:.2f} (target <= 0.6 on 2 cores); identical numbers: {same}")


if __name__ == "__main__":
    main()
