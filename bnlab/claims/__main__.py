"""``python -m bnlab.claims``: the course's scorecard, from the committed results or a fresh run.

    python -m bnlab.claims                 # the scorecard from results/NN.json (committed full runs)
    python -m bnlab.claims --markdown      # ... as a Markdown table;  --json  as JSON
    python -m bnlab.claims --run --quick   # re-run every notebook's claim checks (quick mode) and
                                           # print the fresh verdicts beside the committed ones
    python -m bnlab.claims --run --notebooks 06 09   # only these notebooks (full mode without --quick)

    python -m bnlab.claims --figure        # also draw the scorecard figure (figures/scorecard.png,
                                           # or --figure PATH)

``--run`` executes the
notebooks headless in a temporary folder, with checks recorded rather than asserted, so a
claim that no longer holds shows up as "not reproduced" instead of stopping the run; the
committed notebooks and results are left as they are. The table marks a changed verdict, and a
check that flipped between holding and not while the verdict stayed. Exit status: 0, or 1 when
``--run`` finds a verdict that changed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bnlab import claims
from bnlab.claims import scorecard
from bnlab.claims.core import repo_root
from bnlab.parallel import cpu_count

_DEFAULT_FIGURE = object()
"""``--figure`` without a path: figures/scorecard.png in the course repository, found when it is needed."""


def _notebooks(selected: list[str] | None) -> list[Path]:
    have = {p.name[:2]: p for p in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    with_claims = sorted({c.notebook for c in claims.CLAIMS if c.checks})
    wanted = selected or with_claims
    unknown = [n for n in wanted if n not in have]
    if unknown:
        raise SystemExit(f"--notebooks: no notebook {unknown}; the course has {sorted(have)}")
    return [have[n] for n in wanted]


def _execute(nb: Path, out_dir: Path, results: Path, quick: bool, workers: int) -> tuple[str, int, str]:
    env = {**os.environ, "BNLAB_RESULTS": str(results), "BNLAB_CLAIMS_RECORD_ONLY": "1",
           "BNLAB_PROGRESS": "0", "BNLAB_QUICK": "1" if quick else "0", "BNLAB_WORKERS": str(workers),
           "OMP_NUM_THREADS": "1"}
    copy = out_dir / nb.name
    shutil.copy(nb, copy)
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
           "--allow-errors", "--ExecutePreprocessor.kernel_name=python3",
           "--ExecutePreprocessor.timeout=3600", str(copy)]
    proc = subprocess.run(cmd, cwd=nb.parent, env=env, capture_output=True, text=True)
    return nb.name, proc.returncode, proc.stderr[-2000:]


def main(argv: list[str] | None = None) -> int:
    """Print the scorecard (see the module docstring); returns the exit status (1: a verdict changed).

    Raises:
        SystemExit: a command line argparse refuses (status 2; ``--help``: status 0), ``--quick`` or
            ``--notebooks`` without ``--run``, or ``--notebooks`` naming a notebook the course lacks.
        FileNotFoundError: no course repository found (see ``core.repo_root``) where one is needed:
            without ``--results`` and ``BNLAB_RESULTS``, with ``--run``, or for the default figure path.
        ValueError: a results file that is not valid JSON.
        OSError: the figure cannot be written.
    """
    ap = argparse.ArgumentParser(prog="python -m bnlab.claims", description=__doc__.splitlines()[0])
    fmt = ap.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--run", action="store_true", help="re-run the notebooks' claim checks and compare")
    ap.add_argument("--quick", action="store_true", help="with --run: quick mode (a few minutes)")
    ap.add_argument("--notebooks", nargs="+", metavar="NN", help="with --run: only these notebooks")
    ap.add_argument("--results", type=Path, default=None, help="folder of committed results (default results/)")
    ap.add_argument("--figure", nargs="?", type=Path, const=_DEFAULT_FIGURE, default=None,
                    metavar="PATH", help="also write the scorecard figure (default path figures/scorecard.png)")
    args = ap.parse_args(argv)
    if (args.quick or args.notebooks) and not args.run:
        ap.error("--quick and --notebooks go with --run")

    committed = scorecard.rows(claims.CLAIMS, claims.load_results(args.results))
    table = committed
    changed = []
    if args.run:
        notebooks = _notebooks(args.notebooks)
        parallel_nbs = max(1, min(len(notebooks), cpu_count()))
        with tempfile.TemporaryDirectory(prefix="bnlab-claims-") as tmp:
            tmp_path = Path(tmp)
            (tmp_path / "results").mkdir()
            print(f"running {len(notebooks)} notebooks ({'quick' if args.quick else 'full'} mode), "
                  f"{parallel_nbs} at a time ...", flush=True)
            with ThreadPoolExecutor(parallel_nbs) as pool:
                futures = [pool.submit(_execute, nb, tmp_path, tmp_path / "results", args.quick,
                                       max(1, cpu_count() // parallel_nbs)) for nb in notebooks]
                for f in futures:
                    name, rc, err = f.result()
                    print(f"  {name}: {'done' if rc == 0 else 'FAILED to run: ' + err.strip().splitlines()[-1]}",
                          flush=True)
            fresh_results = claims.load_results(tmp_path / "results")
        ran = {nb.name[:2] for nb in notebooks}
        fresh = scorecard.rows([c for c in claims.CLAIMS if c.notebook in ran], fresh_results)
        pairs = scorecard.compare(committed, fresh)
        changed = [(a, b) for a, b, _ in pairs if a.verdict != b.verdict]
        flipped = [(a, b) for a, b, ch in pairs if ch and a.verdict == b.verdict]
        table = [b for _, b, _ in pairs]
        print("\n| nb | claim | committed | fresh | changed |\n|---|---|---|---|---|")
        for a, b, ch in pairs:
            before = {r["check"]: r["holds"] for r in a.results}
            flips = [r["check"] for r in b.results if r["check"] in before and before[r["check"]] != r["holds"]]
            note = "VERDICT" if a.verdict != b.verdict else f"check flipped: {', '.join(flips)}" if ch else ""
            print(f"| {a.claim.notebook} | {a.claim.id} | {a.verdict} | {b.verdict} | {note} |")
        print()
        if flipped:
            print(f"{len(flipped)} claim(s) kept their verdict but a check flipped between holding and not "
                  "(quick mode runs fewer seeds and steps than the committed full runs)", file=sys.stderr)
    if args.markdown:
        print(scorecard.to_markdown(table))
    elif args.json:
        print(scorecard.to_json(table))
    else:
        print(scorecard.to_text(table))
    if args.figure is not None:
        if args.figure is _DEFAULT_FIGURE:
            args.figure = repo_root() / "figures" / "scorecard.png"
        import matplotlib
        matplotlib.use("Agg")
        scorecard.plot(table, args.figure)
        print(f"\nwrote {args.figure}", file=sys.stderr)
    if changed:
        print(f"{len(changed)} verdict(s) changed: " + ", ".join(a.claim.id for a, _ in changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
