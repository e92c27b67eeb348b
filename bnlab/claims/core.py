"""The claims registry: what a claim is, how a notebook checks it, where the results go.

A **claim** is a statement about batch normalization that the course tests (who
made it, which notebook measures it, which of the five explanations it bears on).
Each claim has one or more **checks**: a measured quantity and the condition the
notebook asserts on it (``value < 1e-8``, ``|value − 1.211| < 0.03``, ...). The
condition lives here, once: notebooks read it through ``check``/``threshold``, so
the table shown to students cannot drift from what is asserted.

A notebook calls ``check(claim_id, check_name, value)``: it prints the measured
value beside the condition, records the result, and raises ``AssertionError`` if
the condition fails, all in one call, so the scorecard cannot disagree with what
was asserted. ``show`` records a finding that is shown, not asserted (for
example where a check held on seeds 0–2 but not on the held-out seeds 3–5).
``save(notebook)`` writes the notebook's recorded results to
``results/NN.json`` in a full-mode run (quick mode leaves the committed file alone).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from bnlab.runtime import is_quick

__all__ = ["Check", "Claim", "Result", "EXPLANATIONS", "VERDICTS", "OPS", "repo_root", "results_dir"]

EXPLANATIONS: dict[str, str] = {
    "ics": "Internal covariate shift (Ioffe & Szegedy 2015, §1-2)",
    "smoothness": "A smoother loss landscape (Santurkar et al. 2018)",
    "start": "A well-conditioned start (Ioffe & Szegedy 2015, §3.3; Mishkin & Matas 2016; Yang et al. 2019)",
    "learning-rate": "A larger usable learning rate through scale invariance (Ioffe & Szegedy 2015, §3.3; "
                     "Bjorck et al. 2018; Arora, Li & Lyu 2019)",
    "regularization": "Regularization by batch noise (Ioffe & Szegedy 2015, §3.4)",
}
"""The five explanations the course weighs (COURSE.md), by key."""

VERDICTS = ("supported", "refuted", "mixed", "depends on the setting", "not seen here", "inconclusive",
            "illustration")
"""What a claim's checks can establish.

- "supported" / "refuted": the measurements agree with / contradict the statement in the
  setting tested, which is the setting the statement is about;
- "mixed": some measurements agree and some contradict, in the same setting;
- "depends on the setting": it holds in some of the settings tested and not in others;
- "not seen here": the effect the source reports did not appear in the course's setting, which
  is smaller or different from the source's (a small MLP on Fashion-MNIST), so the statement is
  not refuted in general;
- "inconclusive": the experiment cannot decide the statement as its source means it (a
  confound, or not the source's test), said in ``why``;
- "illustration": the check holds by construction (algebra the code computes), so it is shown
  as a worked example, not as evidence."""

OPS: dict[str, str] = {
    "<": "value < threshold", "<=": "value ≤ threshold", ">": "value > threshold",
    ">=": "value ≥ threshold", "near": "|value − target| < threshold",
    "between": "low < value < high (threshold = (low, high))",
}
"""The conditions a check can assert."""


@dataclass(frozen=True)
class Check:
    """One asserted (or shown) measurement of a claim.

    Attributes:
        name: short key, unique within its claim, e.g. ``"fd-two-point"``.
        measure: what is measured, in words, with units and settings
            (e.g. "relative error of the staged backward vs two-point differences, float64").
        op: one of ``OPS``.
        threshold: the bound (for ``"between"`` a pair (low, high); for ``"near"`` the tolerance).
        target: the centre for ``"near"``.
        asserted: False for a finding that is shown, not asserted (the notebook calls ``show``).

    Raises:
        ValueError: ``op`` is not one of ``OPS``; "between" without a (low, high) threshold; "near"
            without a target.
    """

    name: str
    measure: str
    op: str
    threshold: float | tuple[float, float]
    target: float | None = None
    asserted: bool = True

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"Check {self.name!r}: op must be one of {sorted(OPS)}, got {self.op!r}")
        if self.op == "between" and not (isinstance(self.threshold, tuple) and len(self.threshold) == 2):
            raise ValueError(f"Check {self.name!r}: op 'between' needs threshold=(low, high)")
        if self.op == "near" and self.target is None:
            raise ValueError(f"Check {self.name!r}: op 'near' needs a target")

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the condition (NaN never does)."""
        v = float(value)
        if math.isnan(v):
            return False
        t = self.threshold
        if self.op == "<":
            return v < t  # type: ignore[operator]
        if self.op == "<=":
            return v <= t  # type: ignore[operator]
        if self.op == ">":
            return v > t  # type: ignore[operator]
        if self.op == ">=":
            return v >= t  # type: ignore[operator]
        if self.op == "near":
            return abs(v - self.target) < t  # type: ignore[operator]
        low, high = t  # type: ignore[misc]
        return low < v < high

    def condition(self) -> str:
        """The condition in words, e.g. ``"< 1e-05"`` or ``"within 0.03 of 1.211"``."""
        t = self.threshold
        if self.op == "near":
            return f"within {t:g} of {self.target:g}"
        if self.op == "between":
            return f"between {t[0]:g} and {t[1]:g}"  # type: ignore[index]
        return f"{self.op} {t:g}"


@dataclass(frozen=True)
class Claim:
    """One testable statement about batch normalization.

    Attributes:
        id: short key, unique in the course, e.g. ``"faster-training"``.
        notebook: the notebook that measures it, e.g. ``"03"``.
        statement: the claim in one sentence, as its source makes it.
        source: who made it (author, year, section), or which source text raised it.
        explanation: the key in ``EXPLANATIONS`` it bears on, or None for a practical claim.
        test: what is measured, in one line (the table shown to students).
        checks: the measurements and their conditions.
        verdict: what the claim is, given that every asserted check holds: one of ``VERDICTS``
            (a claim whose checks show the opposite of the statement has verdict "refuted").
        why: one sentence from the measured evidence to the verdict.
    """

    id: str
    notebook: str
    statement: str
    source: str
    test: str
    checks: tuple[Check, ...] = ()
    verdict: str = "supported"
    explanation: str | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Claim {self.id!r}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.explanation is not None and self.explanation not in EXPLANATIONS:
            raise ValueError(f"Claim {self.id!r}: explanation must be one of {sorted(EXPLANATIONS)} or None")
        names = [c.name for c in self.checks]
        if len(names) != len(set(names)):
            raise ValueError(f"Claim {self.id!r}: check names repeat: {names}")

    def check(self, name: str) -> Check:
        """The check called ``name``; a KeyError listing the claim's checks otherwise."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"claim {self.id!r} has no check {name!r}; its checks are {[c.name for c in self.checks]}")


@dataclass
class Result:
    """One recorded measurement: the claim, the check, the value and whether the condition held."""

    claim: str
    check: str
    value: float
    holds: bool
    asserted: bool
    condition: str
    measure: str
    per_seed: dict[str, float] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = _finite_or_str(self.value)
        d["per_seed"] = {k: _finite_or_str(v) for k, v in self.per_seed.items()}
        return d


def _finite_or_str(v: float) -> float | str:
    v = float(v)
    return v if math.isfinite(v) else str(v)


def _is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is the course's repository: its ``pyproject.toml`` names the project bnlab,
    or it holds ``results/`` and ``notebooks/00_setup.ipynb`` (the course's files without the package)."""
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            text = pyproject.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        try:
            import tomllib
            named = tomllib.loads(text).get("project", {}).get("name")
        except ImportError:  # Python 3.10: a line name = "bnlab"
            named = "bnlab" if re.search(r"^name\s*=\s*[\"']bnlab[\"']\s*$", text, re.M) else None
        except tomllib.TOMLDecodeError:
            named = None
        if named == "bnlab":
            return True
    return (folder / "results").is_dir() and (folder / "notebooks" / "00_setup.ipynb").is_file()


def repo_root() -> Path:
    """The course's repository: the folder holding ``notebooks/``, ``results/`` and ``figures/``.

    The checkout the package lives in (an editable install, or ``import bnlab`` from the repository
    root); for a package installed elsewhere (a wheel in site-packages), the nearest checkout at or
    above the current working directory. A checkout is a folder whose ``pyproject.toml`` names the
    project bnlab, or one with ``results/`` and ``notebooks/00_setup.ipynb``.

    Raises:
        FileNotFoundError: bnlab is installed outside a checkout and none is at or above the
            working directory (the message says how to point bnlab at one).
    """
    here = Path(__file__).resolve().parents[2]
    if _is_checkout(here):
        return here
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if _is_checkout(folder):
            return folder
    raise FileNotFoundError(
        f"cannot find the bnlab course repository: the package is installed in {here}, outside a "
        f"checkout, and no checkout (a folder whose pyproject.toml names bnlab) is at or above the working "
        f"directory {cwd}. Run from inside the course repository, or install bnlab from it with "
        f"`pip install -e .`; to read or write results elsewhere, set BNLAB_RESULTS to that folder.")


def results_dir() -> Path:
    """Where the committed results files live: ``results/`` at the repository root (``repo_root()``;
    override with the environment variable ``BNLAB_RESULTS``).

    Raises:
        FileNotFoundError: ``BNLAB_RESULTS`` is unset and no course repository can be found (see
            ``repo_root``).
    """
    env = os.environ.get("BNLAB_RESULTS")
    if env:
        return Path(env)
    return repo_root() / "results"


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (never half-written).

    Raises:
        TypeError: ``payload`` holds a value JSON cannot represent (the temporary file is removed).
        ValueError: ``payload`` refers to itself.
        OSError: the folder cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_metadata(notebook: str, settings: Mapping[str, Any] | None, seeds: Sequence[int] | None) -> dict[str, Any]:
    """What a results file records about the run that made it.

    Raises:
        ValueError: ``BNLAB_QUICK`` holds a value quick mode does not know (see ``runtime.is_quick``).
        TypeError: ``seeds`` not iterable, or ``settings`` not a mapping.
    """
    import torch

    import bnlab
    return {
        "notebook": notebook, "mode": "quick" if is_quick() else "full",
        "bnlab_version": bnlab.__version__, "torch_version": torch.__version__,
        "threads": torch.get_num_threads(), "seeds": list(seeds or []), "settings": dict(settings or {}),
    }
