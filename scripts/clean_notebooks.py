"""Normalise executed notebooks before committing: python3 kernelspec, no run timestamps.

Keeps outputs and execution counts (nbval and readers need them); drops the
per-cell execution timestamps and authoring-tool metadata that change on every run.

Usage: python scripts/clean_notebooks.py notebooks/*.ipynb
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def clean(path: Path) -> bool:
    """Clean one notebook in place; return True if it changed."""
    text = path.read_text()
    nb = json.loads(text)
    nb["metadata"].pop("jupytext", None)
    nb["metadata"]["kernelspec"] = KERNELSPEC
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if clean(Path(arg)):
            print(f"cleaned {arg}")
