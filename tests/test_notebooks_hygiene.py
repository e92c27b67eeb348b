"""Every committed notebook is executed, in order, clean, and free of machine-specific paths."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(/home/|/Users/|/root/|/tmp/|/work/|[A-Z]:\\\\Users)")


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join(data.get("text/plain", "")) + "".join(data.get("text/html", ""))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    assert NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_clean_and_portable(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3", "kernelspec must be python3"
    cells = _code_cells(nb)
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"not run top to bottom in one kernel: {counts}"
    for i, cell in enumerate(cells, start=1):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} has an error output: {out.get('ename')}"
            text = _text(out)
            if out.get("name") == "stderr":
                assert not re.search(r"Warning|Traceback", text), f"cell {i} prints a warning:\n{text[:500]}"
            assert not ABSOLUTE_PATH.search(text), f"cell {i} output shows a local path:\n{text[:300]}"
        assert not ABSOLUTE_PATH.search("".join(cell["source"])), f"cell {i} source has a local path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_figures_title_and_claim_checks(path):
    nb = json.loads(path.read_text())
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith(f"# {path.name[:2]} ·"), "the first cell is the title '# NN · ...'"
    outputs = [o for c in _code_cells(nb) for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the stored outputs"
    sources = "\n".join("".join(c["source"]) for c in _code_cells(nb))
    assert "assert " in sources or "claims.check(" in sources, "no claim checks (assert statements or claims.check)"
