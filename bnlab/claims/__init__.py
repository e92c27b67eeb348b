"""The registry of record: every claim the course tests, its checks, and what was measured.

Notebooks check claims through this module::

    from bnlab import claims
    claims.check("backward", "fd-two-point", err, per_seed={0: e0, 1: e1})   # prints, records, asserts
    claims.show("noisy-bn", "margin-3k", margin)     # a finding shown, not asserted
    claims.save("02")                                 # full mode: writes results/02.json

``claims.threshold(claim, check)`` gives a check's bound for text and plots.
Each notebook's claims are defined in ``bnlab/claims/nbNN.py``; ``CLAIMS`` holds them all.
See ``bnlab.claims.core`` for the data model (``Claim``, ``Check``, ``Result``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from bnlab.claims import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09
from bnlab.claims.core import (EXPLANATIONS, OPS, VERDICTS, Check, Claim, Result, results_dir, run_metadata,
                               write_json_atomic)
from bnlab.runtime import is_quick

__all__ = ["Check", "Claim", "Result", "CLAIMS", "EXPLANATIONS", "VERDICTS", "OPS", "get", "threshold",
           "check", "show", "recorded", "clear", "save", "load_results", "claims_markdown", "results_dir"]

CLAIMS: tuple[Claim, ...] = tuple(
    c for m in (nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09) for c in m.CLAIMS)
"""Every registered claim, in notebook order."""

_BY_ID = {c.id: c for c in CLAIMS}
if len(_BY_ID) != len(CLAIMS):
    raise RuntimeError("two registered claims share an id")

_RECORDED: list[Result] = []


def get(claim_id: str) -> Claim:
    """The registered claim ``claim_id``; a KeyError naming the known ids otherwise."""
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"no registered claim {claim_id!r}; register it in bnlab/claims/nbNN.py. "
                       f"Known: {sorted(_BY_ID)}") from None


def threshold(claim_id: str, check_name: str) -> Any:
    """The bound a check asserts (a float, or (low, high) for 'between').

    Raises:
        KeyError: the claim or check is not registered.
    """
    return get(claim_id).check(check_name).threshold


def _record(claim_id: str, check_name: str, value: float, per_seed: Mapping[Any, float] | None,
            seeds: Sequence[int] | None, note: str, assert_it: bool) -> Result:
    c = get(claim_id).check(check_name)
    if assert_it != c.asserted:
        verb = "check" if c.asserted else "show"
        raise ValueError(f"claim {claim_id!r}, check {check_name!r} is registered as "
                         f"{'asserted' if c.asserted else 'shown, not asserted'}: call claims.{verb}(...)")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value must be one number (the measured quantity), got {type(value).__name__}; "
                        "pass per-seed numbers as per_seed={seed: value}") from None
    seeds_list = [int(s) for s in (seeds if seeds is not None else (per_seed or {}).keys())]
    r = Result(claim=claim_id, check=check_name, value=v, holds=c.holds(v), asserted=c.asserted,
               condition=c.condition(), measure=c.measure,
               per_seed={str(k): float(x) for k, x in (per_seed or {}).items()}, seeds=seeds_list, note=note)
    _RECORDED[:] = [x for x in _RECORDED if (x.claim, x.check) != (claim_id, check_name)] + [r]
    seeds_txt = "  per seed: " + ", ".join(f"{k}: {x:.4g}" for k, x in r.per_seed.items()) if r.per_seed else ""
    status = ("holds" if r.holds else "FAILS") if c.asserted else ("shown; the condition holds" if r.holds
                                                                    else "shown; the condition does not hold")
    print(f"[{get(claim_id).notebook} {claim_id} · {check_name}] {c.measure}: {v:.4g} "
          f"(condition {c.condition()}): {status}{seeds_txt}")
    return r


def check(claim_id: str, check_name: str, value: float, per_seed: Mapping[Any, float] | None = None,
          seeds: Sequence[int] | None = None, note: str = "") -> Result:
    """Record a measured value for an asserted check, print it beside its condition, and assert it.

    Args:
        claim_id, check_name: a registered claim and one of its checks.
        value: the measured quantity the condition is about (e.g. the worst seed's margin).
        per_seed: the per-seed values it was computed from, shown and recorded.
        seeds: the seeds relied on (default: the keys of ``per_seed``).
        note: what else a reader should know (e.g. "statistics: running averages (eval mode)").

    Raises:
        AssertionError: the condition does not hold (the message says what was measured).
        KeyError: the claim or check is not registered.
    """
    r = _record(claim_id, check_name, value, per_seed, seeds, note, assert_it=True)
    if not r.holds and not _record_only():
        raise AssertionError(f"claim {claim_id!r}, check {check_name!r}: measured {r.value:.6g}, "
                             f"expected {r.condition} ({r.measure})")
    return r


def _record_only() -> bool:
    """``python -m bnlab.claims --run`` re-runs notebooks with BNLAB_CLAIMS_RECORD_ONLY=1: a failing check is
    recorded (and reported as "not reproduced") instead of stopping the notebook."""
    return os.environ.get("BNLAB_CLAIMS_RECORD_ONLY", "") == "1"


def show(claim_id: str, check_name: str, value: float, per_seed: Mapping[Any, float] | None = None,
         seeds: Sequence[int] | None = None, note: str = "") -> Result:
    """Record a finding that is shown, not asserted (its check is registered with ``asserted=False``).

    Raises:
        KeyError: the claim or check is not registered.
        ValueError: the check is registered as asserted (call ``check``).
        TypeError: ``value`` is not one number.
    """
    return _record(claim_id, check_name, value, per_seed, seeds, note, assert_it=False)


def recorded(notebook: str | None = None) -> list[Result]:
    """The results recorded in this process so far (optionally of one notebook).

    Raises:
        KeyError: a recorded result names a claim that is not registered.
    """
    return [r for r in _RECORDED if notebook is None or get(r.claim).notebook == notebook]


def clear() -> None:
    """Forget the results recorded in this process."""
    _RECORDED.clear()


def save(notebook: str, settings: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None,
         folder: str | Path | None = None, force: bool = False) -> Path | None:
    """Write this notebook's recorded results to ``results/NN.json`` (full mode only).

    In quick mode nothing is written (the committed file holds the full run's numbers)
    unless ``force`` or ``BNLAB_RESULTS`` names another folder; returns the path written, or None.

    Raises:
        ValueError: a registered check of this notebook was not recorded in this run.
        FileNotFoundError: no ``folder``, ``BNLAB_RESULTS`` unset and no course repository found
            (see ``core.repo_root``).
    """
    mine = recorded(notebook)
    missing = [f"{c.id} · {k.name}" for c in CLAIMS if c.notebook == notebook for k in c.checks
               if not any((r.claim, r.check) == (c.id, k.name) for r in mine)]
    if missing and not _record_only():
        raise ValueError(f"notebook {notebook}: registered checks not recorded in this run: {missing}")
    if is_quick() and not force and "BNLAB_RESULTS" not in os.environ:
        print(f"quick mode: results/{notebook}.json left as committed ({len(mine)} results recorded)")
        return None
    path = Path(folder) if folder is not None else results_dir()
    path = path / f"{notebook}.json"
    payload = {"run": run_metadata(notebook, settings, seeds), "results": [r.to_json() for r in mine]}
    write_json_atomic(path, payload)
    print(f"wrote {len(mine)} results to {path.parent.name}/{notebook}.json")
    return path


def load_results(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The committed results: notebook → {"run": metadata, "results": [result dicts]}.

    Raises:
        FileNotFoundError: no ``folder``, ``BNLAB_RESULTS`` unset and no course repository found
            (see ``core.repo_root``).
    """
    path = Path(folder) if folder is not None else results_dir()
    out = {}
    for f in sorted(path.glob("[0-9][0-9].json")):
        out[f.stem] = json.loads(f.read_text())
    return out


def claims_markdown(claims: Sequence[Claim] = CLAIMS) -> str:
    """The claims as a Markdown table (for ``IPython.display.Markdown``): notebook, claim, source,
    what is measured with the conditions asserted, and the kind of result (read from the registry).

    The last column is ``Claim.verdict``: "illustration" marks a claim whose checks hold by
    construction (algebra our own code computes), so they show the claim at work but are not evidence;
    every other verdict rests on measured checks that could have failed.
    """
    rows = ["| notebook | claim | source | what we measure (asserted conditions) | verdict |",
            "|---|---|---|---|---|"]
    for c in claims:
        conds = "; ".join(f"{k.measure}: {k.condition()}" for k in c.checks if k.asserted)
        test = c.test + (f" — {conds}" if conds else "")
        kind = "*illustration* (holds by construction)" if c.verdict == "illustration" else c.verdict
        rows.append(f"| {c.notebook} | {c.statement} | {c.source} | {test} | {kind} |")
    return "\n".join(rows)
