"""Parallel runs: bit-identical to sequential runs, faults reported, interrupts leave no child behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlab import models, parallel, probes, train

pytestmark = pytest.mark.skipif(parallel.fork_problem() is not None, reason="needs the fork start method")

REPO = Path(__file__).resolve().parents[1]


def _same(a: train.History, b: train.History) -> None:
    """Bit-identical histories (wall-clock seconds aside)."""
    for key in ("steps", "test_acc", "test_loss", "train_acc", "train_loss"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert a.diverged == b.diverged and a.diverged_at == b.diverged_at
    assert a.probe_steps == b.probe_steps
    for name in a.probes:
        for u, v in zip(a.probes[name], b.probes[name]):
            assert u == v or all(np.array_equal(u[k], v[k]) for k in u), name
    assert a.config == b.config


def _bn_runs(data, seeds=(0, 1, 2)):
    width = 24   # a closure over a local, as a notebook would write it
    probe = probes.GradientNorms(every=20)
    return train.grid(lambda norm: models.mlp(widths=(width, width), norm=norm, init_std=0.1), data,
                      seeds=list(seeds), norm=["bn", None], lr=0.5, steps=60, eval_every=30,
                      probes={"grad": probe})


def test_same_numbers_alone_sequential_and_in_pools_of_any_size(small_fmnist):
    runs = _bn_runs(small_fmnist)
    seq = train.fit_many(runs, workers=1)
    for workers in (2, 3):
        for a, b in zip(seq, train.fit_many(runs, workers=workers)):
            _same(a, b)
    with parallel.one_thread():   # a run alone in a one-thread process
        alone = train.fit(**{k: v for k, v in runs[1].items() if k != "settings"}, progress=False)
    alone.config["settings"] = runs[1]["settings"]
    _same(seq[1], alone)
    assert [h.config["settings"] for h in seq] == [r["settings"] for r in runs]   # input order
    assert seq[0].probes["grad"] and not seq[0].diverged


def test_safe_after_the_parent_used_several_threads(small_fmnist):
    runs = _bn_runs(small_fmnist, seeds=[0])
    before = train.fit_many(runs, workers=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.randn(500, 500) @ torch.randn(500, 500)   # the parent's thread pool is now in use
        after = train.fit_many(runs, workers=2)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(before, after):
        _same(a, b)


def test_fit_seeds_runs_in_parallel_in_seed_order(small_fmnist):
    hists = train.fit_seeds(lambda: models.mlp(widths=(16,)), small_fmnist, [3, 1], workers=2, steps=20, lr=0.1)
    assert [h.config["seed"] for h in hists] == [3, 1]
    _same(hists[1], train.fit_seeds(lambda: models.mlp(widths=(16,)), small_fmnist, [1], workers=1,
                                    steps=20, lr=0.1)[0])


def test_a_diverged_run_is_flagged_not_raised(small_fmnist):
    runs = train.grid(lambda: models.mlp(widths=(16,), init_std=0.1), small_fmnist, lr=[1e4, 0.1], steps=200)
    big, small = train.fit_many(runs, workers=2)
    assert big.diverged and not small.diverged


def _boom(width):
    if width == 9:
        raise RuntimeError("factory exploded")
    return models.mlp(widths=(width,))


def test_an_exception_names_the_run_and_carries_the_traceback(small_fmnist):
    runs = train.grid(_boom, small_fmnist, width=[8, 9], lr=0.1, steps=5)
    with pytest.raises(parallel.TaskError) as err:
        train.fit_many(runs, workers=2)
    msg = str(err.value)
    assert "width=9" in msg and "seed=0" in msg and "factory exploded" in msg and "_boom" in msg
    with pytest.raises(parallel.TaskError, match="width=9"):
        train.fit_many(runs, workers=1)


def test_a_killed_worker_is_reported_not_waited_on(small_fmnist):
    def suicide():
        os.kill(os.getpid(), signal.SIGKILL)
    runs = [dict(model=suicide, data=small_fmnist, steps=5, lr=0.1),
            dict(model=lambda: models.mlp(widths=(8,)), data=small_fmnist, steps=5, lr=0.1)]
    start = time.monotonic()
    with pytest.raises(parallel.WorkerDied, match="killed"):
        train.fit_many(runs, workers=2)
    assert time.monotonic() - start < 60


def test_without_fork_it_runs_sequentially_and_says_why(small_fmnist, monkeypatch, capsys):
    runs = _bn_runs(small_fmnist, seeds=[0])
    expected = train.fit_many(runs, workers=1)
    monkeypatch.setattr(parallel, "fork_problem", lambda: "the fork start method is not available on win32")
    got = train.fit_many(runs, workers=2)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "one after another" in out and "win32" in out
    for a, b in zip(expected, got):
        _same(a, b)


INTERRUPT_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from bnlab import models, train
    from bnlab.data import Dataset
    import torch
    x = torch.rand(600, 1, 28, 28); y = torch.randint(0, 10, (600,))
    ds = Dataset(x, y, x[:100], y[:100], tuple(map(str, range(10))), "toy", None)
    pids = sys.argv[1]
    def factory():
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\\n")
        return models.mlp(widths=(64,))
    runs = [dict(model=factory, data=ds, steps=10**7, lr=0.01, eval_every=10**7) for _ in range(4)]
    try:
        train.fit_many(runs, workers=2, progress=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
def test_an_interrupt_stops_every_worker(tmp_path):
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_SCRIPT, str(pids)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
            time.sleep(0.1)
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3 and "interrupted" in out, err
        time.sleep(0.2)
        assert not any(_alive(p) for p in workers)
    finally:   # whatever happened above, leave nothing running
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_workers_setting(monkeypatch):
    monkeypatch.delenv("BNLAB_WORKERS", raising=False)
    assert parallel.resolve_workers(None, 100) == parallel.cpu_count()
    assert parallel.resolve_workers(8, 3) == 3
    monkeypatch.setenv("BNLAB_WORKERS", "1")
    assert parallel.resolve_workers(None, 10) == 1
    monkeypatch.setenv("BNLAB_WORKERS", "many")
    with pytest.raises(ValueError, match="BNLAB_WORKERS"):
        parallel.resolve_workers(None, 10)
    with pytest.raises(ValueError, match="at least 1"):
        parallel.resolve_workers(0, 10)
    with pytest.raises(TypeError, match="workers"):
        parallel.resolve_workers(2.5, 10)  # type: ignore[arg-type]


def test_grid_routes_axes_and_select_finds_runs(small_fmnist):
    runs = train.grid(lambda norm, init_std=0.1: models.mlp(widths=(8,), norm=norm, init_std=init_std),
                      small_fmnist, seeds=[0, 1], norm=["bn", None], lr=[0.1, 1.0], init_std=0.01, steps=3)
    assert len(runs) == 8
    assert runs[0]["settings"] == {"norm": "bn", "lr": 0.1, "seed": 0} and runs[0]["steps"] == 3
    assert runs[0]["model"].keywords == {"norm": "bn", "init_std": 0.01}
    hists = train.fit_many(runs, workers=2)
    assert [h.config["lr"] for h in train.select(hists, norm=None, seed=1)] == [0.1, 1.0]
    with pytest.raises(ValueError, match="neither a parameter"):
        train.grid(lambda norm: models.mlp(norm=norm), small_fmnist, nrom=["bn"])
    with pytest.raises(ValueError, match="no values"):
        train.grid(lambda norm: models.mlp(norm=norm), small_fmnist, norm=[])
    with pytest.raises(ValueError, match="does not take"):
        train.fit_many([dict(model=lambda: models.mlp(), data=small_fmnist, step=3, lr=0.1)])
    with pytest.raises(ValueError, match="lacks"):
        train.fit_many([dict(model=lambda: models.mlp(), steps=3, lr=0.1)])


def test_the_callers_random_state_does_not_depend_on_the_worker_count(small_fmnist):
    runs = _bn_runs(small_fmnist, seeds=(0,))
    after = {}
    for workers in (1, 2):
        torch.manual_seed(123)
        np.random.seed(123)
        train.fit_many(runs, workers=workers)
        after[workers] = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    untouched = (torch.rand(3), np.random.rand(3))
    for workers in (1, 2):
        assert torch.equal(after[workers][0], untouched[0]) and np.array_equal(after[workers][1], untouched[1])


def test_an_interrupt_while_waiting_is_deferred_to_a_safe_point():
    # Ctrl-C inside the wait only sets a flag (a KeyboardInterrupt raised half-way through
    # concurrent.futures.wait can leave a future's lock held and deadlock the shutdown);
    # the previous handler comes back afterwards
    before = signal.getsignal(signal.SIGINT)
    with parallel._DeferredInterrupt() as interrupt:
        assert not interrupt.requested
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert interrupt.requested
    assert signal.getsignal(signal.SIGINT) is before
