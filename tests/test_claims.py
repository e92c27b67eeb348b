import json
import re
from pathlib import Path

import pytest

from bnlab import claims
from bnlab.claims import Check, Claim

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CALL = re.compile(r"claims\.(check|show)\(\s*[\"']([\w.-]+)[\"']\s*,\s*[\"']([\w.-]+)[\"']")


def test_every_claim_is_complete_and_unique():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in claims.CLAIMS:
        assert c.notebook.isdigit() and len(c.notebook) == 2
        assert c.statement and c.source and c.test


def test_markdown_table_has_one_row_per_claim_and_shows_the_registered_conditions():
    table = claims.claims_markdown()
    assert table.count("\n") == len(claims.CLAIMS) + 1
    assert "Ioffe & Szegedy 2015, Fig. 1(a)" in table
    for c in claims.CLAIMS:
        for k in c.checks:
            if k.asserted:
                assert k.condition() in table


def test_markdown_table_marks_illustrations_in_a_verdict_column():
    table = claims.claims_markdown().splitlines()
    assert table[0].endswith("| verdict |")
    for c, row in zip(claims.CLAIMS, table[2:]):
        last = row.rsplit("|", 2)[1].strip()
        if c.verdict == "illustration":
            assert last.startswith("*illustration*"), row
        else:
            assert last == c.verdict, row


def test_notebook_00_shows_the_current_claims_table():
    """The table committed in notebook 00 is the registry's, for the notebooks in the folder: a stale
    table (a claim added, a condition changed, a notebook landed since 00 was run) fails here."""
    present = sorted({p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")})
    cells = json.loads((NOTEBOOKS / "00_setup.ipynb").read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and "claims.claims_markdown(" in "".join(c["source"]))
    shown = [o["data"]["text/markdown"] for o in cell["outputs"] if "text/markdown" in o.get("data", {})]
    assert len(shown) == 1, "notebook 00's claims table has no committed output: execute 00 in full mode"
    want = claims.claims_markdown([c for c in claims.CLAIMS if c.notebook in present])
    committed = "".join(shown[0])
    assert committed == want, ("notebook 00's committed claims table differs from the registry for notebooks "
                               f"{', '.join(present)}: re-execute notebooks/00_setup.ipynb")


def _notebook_calls() -> list[tuple[str, str, str, str]]:
    calls = []
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        calls += [(nb.name[:2], kind, cid, name) for kind, cid, name in CALL.findall(src)]
    return calls


def test_notebooks_check_only_registered_claims_with_the_right_call():
    for nb, kind, cid, name in _notebook_calls():
        claim = claims.get(cid)
        assert claim.notebook == nb, f"notebook {nb} checks {cid!r}, registered for notebook {claim.notebook}"
        check = claim.check(name)
        assert (kind == "check") == check.asserted, f"{cid} · {name}: use claims.{'check' if check.asserted else 'show'}"


def test_every_registered_check_is_made_by_its_notebook():
    made = {(cid, name) for _, _, cid, name in _notebook_calls()}
    missing = [(c.id, k.name) for c in claims.CLAIMS for k in c.checks if (c.id, k.name) not in made]
    assert not missing, f"registered checks that no notebook makes: {missing}"


@pytest.mark.parametrize("op,threshold,target,good,bad", [
    ("<", 1e-8, None, 5e-9, 2e-8), (">=", 0.5, None, 0.5, 0.49), ("near", 0.03, 1.211, 1.23, 1.25),
    ("between", (1.05, 1.13), None, 1.09, 1.13),
])
def test_check_conditions(op, threshold, target, good, bad):
    k = Check("k", "m", op, threshold, target)
    assert k.holds(good) and not k.holds(bad) and not k.holds(float("nan"))


def test_bad_registrations_are_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        Check("k", "m", "~", 1.0)
    with pytest.raises(ValueError, match="needs a target"):
        Check("k", "m", "near", 1.0)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("x", "01", "s", "src", "t", verdict="probably")


@pytest.fixture
def toy(monkeypatch):
    claim = Claim("toy", "99", "s", "src", "t", checks=(Check("a", "thing", "<", 1.0),
                                                           Check("b", "other", ">", 0.0, asserted=False)))
    monkeypatch.setitem(claims._BY_ID, "toy", claim)
    monkeypatch.setattr(claims, "CLAIMS", claims.CLAIMS + (claim,))
    claims.clear()
    yield claim
    claims.clear()


def test_check_records_prints_and_asserts(toy, capsys, monkeypatch):
    monkeypatch.delenv("BNLAB_CLAIMS_RECORD_ONLY", raising=False)
    r = claims.check("toy", "a", 0.5, per_seed={0: 0.4, 1: 0.5})
    assert r.holds and r.seeds == [0, 1]
    assert "0.5" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="measured 2"):
        claims.check("toy", "a", 2.0)
    assert [x.value for x in claims.recorded("99")] == [2.0]    # the latest value replaces the earlier one
    with pytest.raises(ValueError, match="shown, not asserted"):
        claims.check("toy", "b", 1.0)
    assert claims.show("toy", "b", -1.0).holds is False        # shown findings never raise
    with pytest.raises(KeyError, match="no check 'c'"):
        claims.check("toy", "c", 0.0)
    with pytest.raises(KeyError, match="no registered claim"):
        claims.check("nope", "a", 0.0)
    with pytest.raises(TypeError, match="one number"):
        claims.check("toy", "a", [0.1, 0.2])


def test_save_writes_only_complete_full_mode_results(toy, tmp_path, monkeypatch):
    monkeypatch.delenv("BNLAB_RESULTS", raising=False)
    monkeypatch.delenv("BNLAB_CLAIMS_RECORD_ONLY", raising=False)
    claims.check("toy", "a", 0.5)
    with pytest.raises(ValueError, match="not recorded"):
        claims.save("99", folder=tmp_path)
    claims.show("toy", "b", 1.0)
    monkeypatch.setenv("BNLAB_QUICK", "1")
    assert claims.save("99", folder=tmp_path) is None and not list(tmp_path.iterdir())
    monkeypatch.setenv("BNLAB_QUICK", "0")
    path = claims.save("99", settings={"steps": 10}, seeds=[0], folder=tmp_path)
    saved = json.loads(path.read_text())
    assert saved["run"]["mode"] == "full" and saved["run"]["settings"] == {"steps": 10}
    assert [r["check"] for r in saved["results"]] == ["a", "b"]
    assert claims.load_results(tmp_path)["99"]["results"][0]["value"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["99.json"]   # no temporary file left behind


# ---------------------------------------------------------------- scorecard and CLI
from bnlab.claims import scorecard  # noqa: E402
from bnlab.claims.__main__ import main as claims_main  # noqa: E402


def _result(claim, check, value, holds, asserted=True):
    return dict(claim=claim.id, check=check.name, value=value, holds=holds, asserted=asserted,
                condition=check.condition(), measure=check.measure, per_seed={}, seeds=[], note="")


def test_verdict_is_read_from_the_results_not_typed_in(toy):
    a, b = toy.checks
    assert scorecard.verdict_of(toy, []) == scorecard.NOT_MEASURED
    assert scorecard.verdict_of(toy, [_result(toy, b, 1.0, True, asserted=False)]) == scorecard.NOT_MEASURED
    assert scorecard.verdict_of(toy, [_result(toy, a, 0.5, True)]) == toy.verdict
    assert scorecard.verdict_of(toy, [_result(toy, a, 2.0, False)]) == scorecard.NOT_REPRODUCED
    refuted = Claim("r", "99", "s", "src", "t", checks=toy.checks, verdict="refuted")
    assert scorecard.verdict_of(refuted, [_result(refuted, a, 0.5, True)]) == "refuted"


def test_scorecard_formats_and_comparison(toy):
    a, _ = toy.checks
    rows = scorecard.rows([toy], {"99": {"results": [_result(toy, a, 0.5, True)]}})
    assert "0.5 (< 1) ✓ asserted" in rows[0].measured and rows[0].basis == scorecard.ASSERTED
    assert "**supported** |" in scorecard.to_markdown(rows)
    assert json.loads(scorecard.to_json(rows))[0]["verdict"] == "supported"
    fresh = scorecard.rows([toy], {"99": {"results": [_result(toy, a, 3.0, False)]}})
    (_, new, changed), = scorecard.compare(rows, fresh)
    assert changed and new.verdict == scorecard.NOT_REPRODUCED
    (_, _, changed), = scorecard.compare(rows, rows)
    assert not changed


def test_a_claim_with_shown_checks_only_says_so_and_a_flipped_finding_is_flagged(toy):
    _, b = toy.checks
    shown = Claim("s", "99", "a statement", "src", "t", checks=(b,), verdict="mixed")
    held = dict(_result(shown, b, 1.0, True, asserted=False), per_seed={"0": 1.0, "3": 1.1})
    failed = dict(held, holds=False)
    rows = scorecard.rows([shown], {"99": {"results": [held]}})
    assert rows[0].verdict == "mixed" and rows[0].basis == scorecard.SHOWN_ONLY and rows[0].seeds == [0, 3]
    assert "**mixed** (shown only)" in scorecard.to_markdown(rows) and "✓ shown" in rows[0].measured
    fresh = scorecard.rows([shown], {"99": {"results": [failed]}})
    (_, new, changed), = scorecard.compare(rows, fresh)
    assert changed and new.verdict == "mixed" and "✗ shown" in new.measured


def test_cli_prints_the_committed_scorecard(toy, tmp_path, capsys):
    claim = toy
    results = [_result(claim, k, 0.0, True, k.asserted) for k in claim.checks]
    (tmp_path / f"{claim.notebook}.json").write_text(json.dumps({"run": {}, "results": results}))
    assert claims_main(["--markdown", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == len(claims.CLAIMS) and f"**{claim.verdict}**" in out
    assert claims_main(["--json", "--results", str(tmp_path)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(claims.CLAIMS)
    figure = tmp_path / "card.png"
    assert claims_main(["--results", str(tmp_path), "--figure", str(figure)]) == 0 and figure.stat().st_size > 0
    with pytest.raises(SystemExit):
        claims_main(["--quick"])


def test_scorecard_figure(toy, tmp_path):
    import matplotlib.pyplot as plt
    rows = scorecard.rows([toy], {})
    fig = scorecard.plot(rows, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    plt.close(fig)


def test_every_question_of_the_source_texts_points_at_registered_claims():
    from bnlab.claims.questions import SEED_QUESTIONS
    for q in SEED_QUESTIONS:
        assert q.claims, q.text
        for cid in q.claims:
            claims.get(cid)


# ---------------------------------------------------------------- where the course repository is
from bnlab.claims import core  # noqa: E402
from bnlab.claims import __main__ as claims_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def installed_wheel(tmp_path, monkeypatch):
    """bnlab as a regular (non-editable) install: the package in a virtualenv's site-packages, outside
    any checkout; the working directory an empty folder. Returns tmp_path."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "bnlab" / "claims").mkdir(parents=True)
    monkeypatch.setattr(core, "__file__", str(site / "bnlab" / "claims" / "core.py"))
    monkeypatch.delenv("BNLAB_RESULTS", raising=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path


def _fake_checkout(folder: Path, name: str = "bnlab") -> Path:
    (folder / "notebooks").mkdir(parents=True)
    (folder / "results").mkdir()
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    return folder


def test_in_a_checkout_the_results_are_the_checkouts(monkeypatch, tmp_path):
    monkeypatch.delenv("BNLAB_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)   # the working directory does not matter when the package is in a checkout
    assert core.repo_root() == REPO
    assert claims.results_dir() == REPO / "results"
    assert [p.name[:2] for p in claims_cli._notebooks(["00"])] == ["00"]


def test_an_installed_package_finds_the_checkout_above_the_working_directory(installed_wheel, monkeypatch):
    checkout = _fake_checkout(installed_wheel / "course")
    (checkout / "notebooks" / "03_training.ipynb").write_text("{}")
    monkeypatch.chdir(checkout / "notebooks")
    assert core.repo_root() == checkout.resolve()
    assert claims.results_dir() == checkout.resolve() / "results"
    assert claims_cli._notebooks(["03"]) == [checkout.resolve() / "notebooks" / "03_training.ipynb"]
    other = _fake_checkout(installed_wheel / "other-project", name="something-else")
    monkeypatch.chdir(other)                       # another project's pyproject.toml is not a checkout
    with pytest.raises(FileNotFoundError):
        core.repo_root()


def test_the_course_files_without_a_pyproject_count_as_a_checkout(installed_wheel, monkeypatch):
    course = installed_wheel / "course"
    (course / "notebooks").mkdir(parents=True)
    (course / "results").mkdir()
    monkeypatch.chdir(course / "notebooks")
    with pytest.raises(FileNotFoundError):        # no notebooks/00_setup.ipynb: not recognised
        core.repo_root()
    (course / "notebooks" / "00_setup.ipynb").write_text("{}")
    assert claims.results_dir() == course.resolve() / "results"


def test_bnlab_results_overrides_the_results_folder_even_outside_a_checkout(installed_wheel, monkeypatch):
    monkeypatch.setenv("BNLAB_RESULTS", str(installed_wheel / "mine"))
    assert claims.results_dir() == installed_wheel / "mine"
    assert claims.load_results() == {}
    monkeypatch.delenv("BNLAB_RESULTS")
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("BNLAB_RESULTS", str(installed_wheel / "mine"))
    assert claims.results_dir() == installed_wheel / "mine"   # ... and inside one


def test_outside_a_checkout_the_error_comes_only_when_the_folder_is_needed(installed_wheel, toy, capsys):
    for needs_the_repository in (core.repo_root, claims.results_dir, claims.load_results,
                                 lambda: claims_cli._notebooks(None)):
        with pytest.raises(FileNotFoundError, match="BNLAB_RESULTS") as err:
            needs_the_repository()
        assert "pip install -e ." in str(err.value) and "site-packages" in str(err.value)
    results = installed_wheel / "given"
    results.mkdir()
    assert claims_cli.main(["--json", "--results", str(results)]) == 0     # a folder given: nothing to find
    capsys.readouterr()
    with pytest.raises(FileNotFoundError, match="BNLAB_RESULTS"):
        claims_cli.main(["--json", "--results", str(results), "--figure"])   # figures/ of which checkout?


def test_the_default_figure_goes_to_the_checkout_found(installed_wheel, toy, monkeypatch, capsys):
    checkout = _fake_checkout(installed_wheel / "course")
    monkeypatch.chdir(checkout)
    assert claims_cli.main(["--json", "--figure"]) == 0
    assert (checkout / "figures" / "scorecard.png").stat().st_size > 0
