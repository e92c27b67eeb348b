"""The scorecard: every registered claim with what was measured and the verdict it earns.

Each claim's verdict is registered with its checks (``Claim.verdict``: what the claim
is *if* its asserted checks hold); the scorecard grants it only from the recorded
results: if every asserted check was recorded and holds, the registered verdict; if an
asserted check was recorded and does not hold, "not reproduced"; if none was recorded,
"not measured". A claim whose checks are all shown, not asserted, keeps its registered
verdict with the basis "shown only": it rests on findings printed in the notebook, which
no run can turn into "not reproduced" (``compare`` still flags a shown condition that flips).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from bnlab.claims.core import EXPLANATIONS, Claim

__all__ = ["Row", "rows", "verdict_of", "to_text", "to_markdown", "to_json", "plot", "compare",
           "NOT_MEASURED", "NOT_REPRODUCED", "ASSERTED", "SHOWN_ONLY"]

NOT_MEASURED = "not measured"
NOT_REPRODUCED = "not reproduced"
ASSERTED = "asserted"
SHOWN_ONLY = "shown only"


@dataclass
class Row:
    """One line of the scorecard."""

    claim: Claim
    results: list[dict[str, Any]]
    verdict: str

    @property
    def basis(self) -> str:
        """What the verdict rests on: "asserted" (checks that held, or one that failed), "shown only"
        (every check of the claim is shown, not asserted), or "" when nothing was recorded."""
        if not self.results:
            return ""
        return ASSERTED if any(c.asserted for c in self.claim.checks) else SHOWN_ONLY

    @property
    def seeds(self) -> list[int]:
        """The seeds the recorded checks rest on (empty for measurements that have no seed)."""
        out: set[int] = set()
        for r in self.results:
            for key in [*(r.get("per_seed") or {}), *(r.get("seeds") or [])]:
                found = re.search(r"(\d+)$", str(key))   # "3", or a labelled seed such as "BN 3"
                if found:
                    out.add(int(found.group(1)))
        return sorted(out)

    @property
    def measured(self) -> str:
        """The recorded checks in words: ``name: value (condition) ✓ asserted | ✗ shown | ...``."""
        parts = []
        for r in self.results:
            value = r["value"]
            shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
            mark = "✓" if r["holds"] else "✗"
            status = (f"{mark} asserted" if r["holds"] else "✗ asserted, FAILS") if r["asserted"] else f"{mark} shown"
            parts.append(f"{r['check']}: {shown} ({r['condition']}) {status}")
        return "; ".join(parts) if parts else "—"

    @property
    def deciding(self) -> str:
        """The first asserted check (else the first shown one) as ``name: value (condition)``, for the figure."""
        if not self.results:
            return "—"
        r = next((r for r in self.results if r["asserted"]), self.results[0])
        value = f"{r['value']:.3g}" if isinstance(r["value"], (int, float)) else str(r["value"])
        return f"{r['check']}: {value} ({r['condition']}){'' if r['asserted'] else ', shown'}"


def _seed_text(seeds: Sequence[int]) -> str:
    if not seeds:
        return "—"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(x) for x in seeds)


def verdict_of(claim: Claim, results: Sequence[Mapping[str, Any]]) -> str:
    """The verdict a claim earns from its recorded results (see the module docstring)."""
    mine = {r["check"]: r for r in results if r["claim"] == claim.id}
    asserted = [c for c in claim.checks if c.asserted]
    if not mine or not claim.checks:
        return NOT_MEASURED
    if any(c.name in mine and not mine[c.name]["holds"] for c in asserted):
        return NOT_REPRODUCED
    if any(c.name not in mine for c in asserted):
        return NOT_MEASURED
    return claim.verdict


def rows(claims: Sequence[Claim], results_by_notebook: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """One ``Row`` per claim, from ``{notebook: {"run": ..., "results": [...]}}`` (``load_results``)."""
    out = []
    for c in claims:
        res = [r for r in results_by_notebook.get(c.notebook, {}).get("results", []) if r["claim"] == c.id]
        out.append(Row(c, res, verdict_of(c, res)))
    return out


def to_text(table: Sequence[Row], width: int = 110) -> str:
    """A plain-text scorecard for the terminal."""
    lines = []
    for r in table:
        basis = f" ({r.basis})" if r.basis == SHOWN_ONLY else ""
        head = f"[{r.claim.notebook}] {r.claim.id} — {r.verdict.upper()}{basis}; seeds {_seed_text(r.seeds)}"
        lines.append(head)
        lines.append(f"    {r.claim.statement} ({r.claim.source})")
        for part in r.measured.split("; "):
            lines.append(f"    measured: {part}"[:width])
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Sequence[Row]) -> str:
    """The scorecard as a Markdown table: notebook, claim, source, explanation, measured, seeds, verdict.

    "measured" lists each recorded check as value (condition) with ✓/✗ and whether it was asserted
    or shown; a verdict resting on shown findings only says "(shown only)".
    """
    out = ["| nb | claim | source | bears on | measured | seeds | verdict |", "|---|---|---|---|---|---|---|"]
    for r in table:
        expl = EXPLANATIONS[r.claim.explanation].split(" (")[0] if r.claim.explanation else "practice"
        basis = " (shown only)" if r.basis == SHOWN_ONLY else ""
        out.append(f"| {r.claim.notebook} | {_cell(r.claim.statement)} | {_cell(r.claim.source)} | {expl} | "
                   f"{_cell(r.measured)} | {_seed_text(r.seeds)} | **{r.verdict}**{basis} |")
    return "\n".join(out)


def to_json(table: Sequence[Row]) -> str:
    """The scorecard as JSON (a list of claims with their results and verdicts)."""
    return json.dumps([dict(id=r.claim.id, notebook=r.claim.notebook, statement=r.claim.statement,
                            source=r.claim.source, explanation=r.claim.explanation, verdict=r.verdict,
                            basis=r.basis, seeds=r.seeds, why=r.claim.why, results=r.results) for r in table],
                      indent=1, ensure_ascii=False)


VERDICT_COLORS = {"supported": "#0072B2", "refuted": "#D55E00", "mixed": "#E69F00",
                  "depends on the setting": "#CC79A7", "not seen here": "#56B4E9", "inconclusive": "#F0E442",
                  "illustration": "#BBBBBB",
                  NOT_MEASURED: "#FFFFFF", NOT_REPRODUCED: "#000000"}
"""Okabe & Ito's colour-blind-safe palette, one colour per verdict."""

_DARK = {"supported", "refuted", NOT_REPRODUCED}   # white text on these, black on the rest


def _groups(table: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Rows grouped under the five explanations, then practice, then the illustrations."""
    groups = [(EXPLANATIONS[k].split(" (")[0], [r for r in table if r.claim.explanation == k
                                                 and r.verdict != "illustration"]) for k in EXPLANATIONS]
    groups.append(("Practice (claims that bear on no single explanation)",
                   [r for r in table if r.claim.explanation is None and r.verdict != "illustration"]))
    groups.append(("Illustrations: checks that hold by construction (worked examples, not evidence)",
                   [r for r in table if r.verdict == "illustration"]))
    return [(name, rows_) for name, rows_ in groups if rows_]


def plot(table: Sequence[Row], path: str | Path | None = None):
    """The scorecard as one figure: claims grouped by the explanation they bear on, each with its
    verdict (colour and word; hatched when it rests on shown findings only), the deciding measured
    value with its condition, and the seeds. Saved to ``path`` if given."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    groups = _groups(table)
    lines = []   # (kind, payload)
    for name, rows_ in groups:
        lines.append(("head", name))
        for r in rows_:
            wrapped = textwrap.wrap(f"{r.claim.notebook} · {r.claim.statement}", 86)
            lines.append(("row", (r, wrapped, textwrap.wrap(r.deciding, 40))))
    heights = [0.55 if kind == "head" else 0.26 * max(1, len(p[1]), len(p[2])) + 0.14 for kind, p in lines]
    total = sum(heights)
    fig = plt.figure(figsize=(13, 0.42 * total + 1.3))
    ax = fig.add_axes([0.01, 0.7 / (0.42 * total + 1.3), 0.98, 1 - 1.25 / (0.42 * total + 1.3)])
    ax.set_xlim(0, 1)
    ax.set_ylim(total, 0)
    ax.axis("off")
    y = 0.0
    x_verdict, w_verdict, x_value, x_seeds = 0.57, 0.175, 0.755, 0.955
    for (kind, payload), h in zip(lines, heights):
        if kind == "head":
            ax.text(0.0, y + 0.38, payload, fontsize=9.5, fontweight="bold", va="center")
            ax.plot([0, 1], [y + 0.52, y + 0.52], color="0.6", lw=0.6)
        else:
            r, wrapped, deciding = payload
            mid = y + h / 2
            ax.text(0.005, mid, "\n".join(wrapped), fontsize=7.5, va="center", linespacing=1.15)
            colour = VERDICT_COLORS.get(r.verdict, "#DDDDDD")
            ax.add_patch(Rectangle((x_verdict, y + 0.05), w_verdict, h - 0.1, facecolor=colour, edgecolor="0.3",
                                   lw=0.6, hatch="////" if r.basis == SHOWN_ONLY else None))
            label = r.verdict + (" (shown only)" if r.basis == SHOWN_ONLY else "")
            ax.text(x_verdict + w_verdict / 2, mid, label, ha="center", va="center", fontsize=7.2,
                    color="white" if r.verdict in _DARK and r.basis != SHOWN_ONLY else "black",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9)
                    if r.basis == SHOWN_ONLY else None)
            ax.text(x_value, mid, "\n".join(deciding), fontsize=6.8, va="center", family="monospace")
            ax.text(x_seeds, mid, _seed_text(r.seeds), fontsize=7, va="center")
        y += h
    for x, name in ((0.005, "notebook · claim as its source states it"), (x_verdict, "verdict"),
                    (x_value, "first asserted check: value (condition)"), (x_seeds, "seeds")):
        ax.text(x, -0.12, name, fontsize=8, style="italic", va="bottom")
    fig.suptitle("Why does batch norm work? Every claim the course tests, grouped by the explanation it bears "
                 "on, with the verdict its recorded measurements earn", fontsize=10.5, y=0.997)
    used = [v for v in VERDICT_COLORS if any(r.verdict == v for r in table)]
    handles = [Patch(facecolor=VERDICT_COLORS[v], edgecolor="0.3", label=v) for v in used]
    if any(r.basis == SHOWN_ONLY for r in table):
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="////", label="rests on shown findings only"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


def _outcomes(row: Row) -> dict[str, bool]:
    return {r["check"]: bool(r["holds"]) for r in row.results}


def compare(committed: Sequence[Row], fresh: Sequence[Row]) -> list[tuple[Row, Row, bool]]:
    """Pairs (committed, fresh, changed) by claim id, for ``python -m bnlab.claims --run``.

    Changed: the verdict differs, or a check recorded in both runs flipped between holding and
    not (for a shown check this is the only way a fresh run can disagree)."""
    by_id = {r.claim.id: r for r in fresh}
    out = []
    for c in committed:
        if c.claim.id not in by_id:
            continue
        f = by_id[c.claim.id]
        before, after = _outcomes(c), _outcomes(f)
        flipped = any(before[k] != after[k] for k in before.keys() & after.keys())
        out.append((c, f, c.verdict != f.verdict or flipped))
    return out
