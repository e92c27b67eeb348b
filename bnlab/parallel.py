"""Run independent tasks in worker processes, one thread each, results in input order.

A small MLP at batch 60 is bound by per-operation overhead, so one run cannot use
more than one core; the lever is running independent runs side by side. This module
does that for any list of tasks (``bnlab.train.fit_many`` uses it for training runs):

- workers are forked from the calling process, so the tasks may be lambdas and
  closures defined in a notebook (nothing about a task is pickled; only its result
  travels back, as a pickle);
- each worker sets one torch thread before doing anything else, so a task gives
  bit-identical numbers whether it ran in a pool of any size or sequentially with
  one thread;
- an exception in a task comes back as ``TaskError`` naming the task, with the
  worker's traceback; a worker killed by the operating system is reported, not
  waited on forever; an interrupt (Ctrl-C, a kernel interrupt) stops every worker
  and leaves no child process behind.

Where fork is unavailable or unsafe (Windows, macOS, a CUDA context already open in
this process), the tasks run sequentially, with one printed line saying why.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import torch

from bnlab.runtime import preserved_rng

__all__ = ["TaskError", "WorkerDied", "resolve_workers", "fork_problem", "run_tasks", "one_thread"]


class TaskError(RuntimeError):
    """A task raised in a worker process; the message names the task and holds its traceback."""


class WorkerDied(RuntimeError):
    """A worker process ended without returning (killed by the operating system, e.g. out of memory)."""


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(workers: int | None, n_tasks: int) -> int:
    """How many worker processes to use for ``n_tasks`` tasks.

    ``workers=None`` reads ``BNLAB_WORKERS``, else uses one per CPU core; never more
    than there are tasks. Raises ValueError for a count below 1 or a bad variable.
    """
    if workers is None:
        env = os.environ.get("BNLAB_WORKERS", "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise ValueError(f"BNLAB_WORKERS={env!r} is not a whole number: set it to the number of "
                                 "worker processes (e.g. BNLAB_WORKERS=4), or unset it for one per core") from None
            if workers < 1:
                raise ValueError(f"BNLAB_WORKERS={env!r} must be at least 1 (1 runs sequentially)")
        else:
            workers = cpu_count()
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be a whole number or None (one per core), got {workers!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (1 runs sequentially), got {workers}")
    return max(1, min(workers, n_tasks))


def fork_problem() -> str | None:
    """Why worker processes cannot be forked here, or None where they can."""
    if "fork" not in mp.get_all_start_methods():
        return f"the fork start method is not available on {sys.platform}"
    if sys.platform == "darwin":
        return "forking is unsafe on macOS (system libraries are not fork-safe)"
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return "CUDA is already initialised in this process, and a forked child cannot use it"
    return None


class one_thread:
    """Context manager: torch uses one intra-op thread inside, as every worker process does."""

    def __enter__(self) -> "one_thread":
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self._threads)


# Set in the parent just before the workers are forked; the children inherit it.
_TASK: Callable[[int], Any] | None = None


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    torch.set_num_threads(1)


def _worker_run(index: int) -> tuple[bool, bytes | str]:
    try:
        assert _TASK is not None
        return True, pickle.dumps(_TASK(index), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent with its traceback
        return False, traceback.format_exc()


class _DeferredInterrupt:
    """Turn Ctrl-C into a flag while the parent waits on its workers.

    A ``KeyboardInterrupt`` raised at an arbitrary point of ``concurrent.futures.wait``
    can leave a future's lock held by the main thread (its lock-acquiring context
    manager is entered but not yet exited), after which stopping the pool deadlocks.
    Inside this context SIGINT only sets ``requested``; the caller checks it between
    waits and raises ``KeyboardInterrupt`` where nothing is half done. Outside the main
    thread (where handlers cannot be installed) it changes nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> "_DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end every worker now."""
    procs = list((getattr(pool, "_processes", None) or {}).values())   # shutdown() forgets them
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()
    pool.shutdown(wait=True, cancel_futures=True)


def run_tasks(task: Callable[[int], Any], n_tasks: int, describe: Callable[[int], str],
              workers: int | None = None, progress: bool = False, desc: str = "runs") -> list[Any]:
    """``[task(0), ..., task(n_tasks − 1)]``, computed in worker processes, in input order.

    Args:
        task: index → result. May be a lambda or closure (workers are forked, not sent it);
            its result must pickle.
        n_tasks: number of tasks.
        describe: index → a short description of the task, used in error messages.
        workers: worker processes (None: ``BNLAB_WORKERS`` or one per core; 1: sequential
            in this process, with one torch thread).
        progress: show one ``tqdm.auto`` bar counting finished tasks.
        desc: the bar's label.

    Raises:
        TaskError: a task raised; names it and carries the worker's traceback.
        WorkerDied: a worker process was killed before returning.
        KeyboardInterrupt: after stopping every worker.
    """
    global _TASK
    n = resolve_workers(workers, n_tasks) if n_tasks else 1
    if n > 1:
        problem = fork_problem()
        if problem is not None:
            print(f"bnlab: running {n_tasks} runs one after another: {problem}.")
            n = 1
    bar = None
    if progress and n_tasks:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_tasks, desc=desc, leave=False)
    results: list[Any] = [None] * n_tasks
    try:
        if n == 1:
            with one_thread():
                for i in range(n_tasks):
                    try:
                        with preserved_rng():  # as in a forked worker: the caller's random state is untouched
                            results[i] = task(i)
                    except Exception as e:
                        raise TaskError(f"{describe(i)} failed: {type(e).__name__}: {e}") from e
                    if bar is not None:
                        bar.update(1)
            return results
        _TASK = task
        ctx = mp.get_context("fork")
        pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init)
        try:
            with _DeferredInterrupt() as interrupt:
                pending: dict[Future, int] = {pool.submit(_worker_run, i): i for i in range(n_tasks)}
                while pending:
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    if interrupt.requested:
                        raise KeyboardInterrupt
                    _collect(done, pending, results, describe, bar)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        return results
    finally:
        _TASK = None
        if bar is not None:
            bar.close()


def _collect(done: set[Future], pending: dict[Future, int], results: list[Any],
             describe: Callable[[int], str], bar: Any) -> None:
    """Move the finished futures' results into ``results`` (raising for a failed task or a dead worker)."""
    for fut in done:
        i = pending.pop(fut)
        try:
            ok, payload = fut.result()
        except BrokenProcessPool:
            unfinished = sorted([i, *pending.values()])
            shown = "; ".join(describe(k) for k in unfinished[:5])
            more = f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else ""
            raise WorkerDied(
                f"a worker process was killed before it finished (by the operating system, "
                f"e.g. out of memory); unfinished: {shown}{more}. Run fewer at once with "
                "workers= or BNLAB_WORKERS, or workers=1 to run them one after another."
            ) from None
        if not ok:
            raise TaskError(f"{describe(i)} failed in a worker process. Its traceback:\n{payload}")
        results[i] = pickle.loads(payload)  # type: ignore[arg-type]
        if bar is not None:
            bar.update(1)
