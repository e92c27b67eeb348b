"""The scorecard: every registered claim with what was measured and the verdict it earns.

The verdict of a claim is read from its recorded results, never typed in: if every
asserted check of the claim was recorded and holds, the claim gets the verdict its
registration states for that case (``Claim.verdict``); if an asserted check was
recorded and does not hold, "not reproduced"; if none was recorded, "not measured".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from bnlab.claims.core import EXPLANATIONS, Claim

__all__ = ["Row", "rows", "verdict_of", "to_text", "to_markdown", "to_json", "plot", "compare",
           "NOT_MEASURED", "NOT_REPRODUCED"]

NOT_MEASURED = "not measured"
NOT_REPRODUCED = "not reproduced"


@dataclass
class Row:
    """One line of the scorecard."""

    claim: Claim
    results: list[dict[str, Any]]
    verdict: str

    @property
    def measured(self) -> str:
        """The recorded checks in words: ``name: value (condition) holds/fails``."""
        parts = []
        for r in self.results:
            value = r["value"]
            shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
            status = ("holds" if r["holds"] else "FAILS") if r["asserted"] else "shown"
            parts.append(f"{r['check']}: {shown} ({r['condition']}) {status}")
        return "; ".join(parts) if parts else "—"


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
        head = f"[{r.claim.notebook}] {r.claim.id} — {r.verdict.upper()}"
        lines.append(head)
        lines.append(f"    {r.claim.statement} ({r.claim.source})")
        for part in r.measured.split("; "):
            lines.append(f"    measured: {part}"[:width])
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Sequence[Row]) -> str:
    """The scorecard as a Markdown table: notebook, claim, source, explanation, measured, verdict."""
    out = ["| nb | claim | source | bears on | measured | verdict |", "|---|---|---|---|---|---|"]
    for r in table:
        expl = EXPLANATIONS[r.claim.explanation].split(" (")[0] if r.claim.explanation else "practice"
        out.append(f"| {r.claim.notebook} | {_cell(r.claim.statement)} | {_cell(r.claim.source)} | {expl} | "
                   f"{_cell(r.measured)} | **{r.verdict}** |")
    return "\n".join(out)


def to_json(table: Sequence[Row]) -> str:
    """The scorecard as JSON (a list of claims with their results and verdicts)."""
    return json.dumps([dict(id=r.claim.id, notebook=r.claim.notebook, statement=r.claim.statement,
                            source=r.claim.source, explanation=r.claim.explanation, verdict=r.verdict,
                            why=r.claim.why, results=r.results) for r in table], indent=1, ensure_ascii=False)


VERDICT_COLORS = {"supported": "#4daf4a", "refuted": "#e41a1c", "mixed": "#ff7f00",
                  "depends on the setting": "#984ea3", "illustration": "#999999",
                  NOT_MEASURED: "#ffffff", NOT_REPRODUCED: "#000000"}


def plot(table: Sequence[Row], path: str | Path | None = None):
    """A one-glance figure: one row per claim, coloured by verdict; saved to ``path`` if given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(table)
    fig, ax = plt.subplots(figsize=(11, 0.32 * n + 1.2))
    for i, r in enumerate(table):
        y = n - 1 - i
        ax.barh(y, 1, color=VERDICT_COLORS.get(r.verdict, "#dddddd"), edgecolor="0.3", height=0.8)
        ax.text(0.5, y, r.verdict, ha="center", va="center", fontsize=8,
                color="white" if r.verdict in ("refuted", NOT_REPRODUCED, "mixed") else "black")
        statement = r.claim.statement if len(r.claim.statement) < 95 else r.claim.statement[:92] + "…"
        ax.text(-0.02, y, f"{r.claim.notebook} · {statement}", ha="right", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.axis("off")
    ax.set_title("Why does batch norm work? Every claim the course tests, and the verdict of its measurements",
                 fontsize=10, loc="right")
    used = [v for v in VERDICT_COLORS if any(r.verdict == v for r in table)]
    ax.legend(handles=[Patch(facecolor=VERDICT_COLORS[v], edgecolor="0.3", label=v) for v in used],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(used), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.72, right=0.98, top=0.93, bottom=0.6 / (0.32 * n + 1.2))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


def compare(committed: Sequence[Row], fresh: Sequence[Row]) -> list[tuple[Row, Row, bool]]:
    """Pairs (committed, fresh, changed) by claim id, for ``python -m bnlab.claims --run``."""
    by_id = {r.claim.id: r for r in fresh}
    return [(c, by_id[c.claim.id], c.verdict != by_id[c.claim.id].verdict) for c in committed if c.claim.id in by_id]
