"""Every notebook runs (one test per notebook, read from the book's build), the export matches them, and the
notebooks keep the project's rules: no outputs, one parameters cell, code that fits the book's column."""
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPERIMENTS = {"train.ipynb", "certify.ipynb", "predict.ipynb"}     # run under papermill: test_system.py, the book
NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_") and p.name not in EXPERIMENTS)


@pytest.mark.book
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, chapter_runs):
    """Each notebook runs top to bottom in a python3 kernel, its tests included, and raises nothing.

    A chapter is executed once in a test run: by the book's build when the run builds the book (tests/test_book.py),
    else here, alone (`pytest tests/test_notebooks.py -k 03_core`). As nbdev-test, cells marked `#| eval: false` are not run."""
    run = chapter_runs[name.removesuffix(".ipynb")]
    assert run["ok"], run["error"]


def test_a_chapter_that_raises_fails_its_test(tmp_path):
    "The record the test above reads: ok only if every cell ran, the failing cell and its error named; nbdev's"
    " `#| eval: false` cells are skipped (as nbdev-test skips them), the other cells all run."
    import json
    from helpers import book_build as build
    cell = lambda src: {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
    nb = {"cells": [cell("x = 1"), cell("#| eval: false\nraise SystemExit('never run')"), cell("x += 1"),
                    cell("assert x == 3, f'x is {x}'")],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "bad.ipynb").write_text(json.dumps(build.strip_nbdev(nb)))
    nb["cells"][-1]["source"] = "assert x == 2, f'x is {x}'"
    (tmp_path / "good.ipynb").write_text(json.dumps(build.strip_nbdev(nb)))
    runs = build.execute(["bad", "good"], tmp_path, jobs=2)
    assert runs["good"]["ok"] and not runs["bad"]["ok"]
    assert "assert x == 3" in runs["bad"]["error"] and "AssertionError: x is 2" in runs["bad"]["error"]
    executed = json.loads((tmp_path / "bad.ipynb").read_text())["cells"]          # the outputs are kept for the page
    assert executed[-1]["outputs"][0]["ename"] == "AssertionError" and not executed[1].get("outputs")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_book_runs_the_cells_nbdev_test_runs(name):
    "A chapter's run (book/build.py) stands for nbdev-test's: the same code cells, by nbdev's own rule for skipping"
    " (#| eval: false, the tst_flags of pyproject.toml, front matter); no cell allowed to raise, none that exports."
    import json
    from helpers import book_build as build
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    nb = NBProcessor(ROOT / "nbs" / name, rm_directives=False, process=True).nb        # as nbdev-test reads it
    skip = _skip_cell(nb, get_config(ROOT).tst_flags.split())
    body = lambda src: "\n".join(l for l in src.split("\n") if not l.startswith("#|")).strip("\n")
    nbdev_runs = [body(c.source) for c in nb.cells if not skip(c) and body(c.source)]
    book = build.strip_nbdev(json.loads((ROOT / "nbs" / name).read_text()))["cells"]
    book_runs = [c["source"] for c in book if c["cell_type"] == "code"
                 and "skip-execution" not in c["metadata"]["tags"]]
    assert book_runs == nbdev_runs
    assert not any("raises-exception" in c["metadata"].get("tags", []) for c in book)
    assert not any("nbdev_export(" in src for src in book_runs)   # it would rewrite the package under the other worker


def test_export_matches_notebooks(tmp_path):
    "randsmooth/*.py is what nbdev-export writes from the notebooks: nobody edited the package by hand."
    for item in ("nbs", "randsmooth", "pyproject.toml", "README.md"):
        src = ROOT / item
        if src.is_dir(): shutil.copytree(src, tmp_path / item)
        elif src.exists(): shutil.copy(src, tmp_path / item)
    subprocess.run([str(BIN / "nbdev-export")], cwd=tmp_path, check=True, capture_output=True)
    cmp = filecmp.dircmp(ROOT / "randsmooth", tmp_path / "randsmooth", ignore=["__pycache__"])
    assert not cmp.diff_files and not cmp.right_only, (cmp.diff_files, cmp.right_only)


def test_notebooks_are_committed_without_outputs():
    "The book and the tests execute the notebooks; committed outputs would only go stale."
    import json
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs: clear them"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_notebooks_have_one_parameters_cell(name):
    "papermill injects its -p values after the cell tagged 'parameters'; nbdev-clean must keep the tag."
    import json
    cells = json.loads((ROOT / "nbs" / name).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"


def _parameters(name):
    "The names and values the parameters cell of an experiment notebook assigns."
    import ast
    import json
    cell = next(c for c in json.loads((ROOT / "nbs" / name).read_text())["cells"]
                if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {a.targets[0].id: ast.literal_eval(a.value) for a in tree.body}


def test_the_parameters_cells_are_the_dataclasses():
    "One list of parameters: each notebook's parameters cell has exactly the dataclass's fields and defaults."
    from dataclasses import fields
    from randsmooth.experiments import PredictParams, RunParams
    from randsmooth.train import TrainConfig
    expected = {
        "certify.ipynb": ({f.name: f.default for f in fields(RunParams)}, set()),
        "predict.ipynb": ({f.name: f.default for f in fields(PredictParams)
                           if f.name not in PredictParams.CERTIFY_ONLY}, set()),
        "train.ipynb": ({f.name: f.default for f in fields(TrainConfig)}, {"device", "data_root", "checkpoint_dir", "progress"}),
    }
    for name, (want, extra) in expected.items():
        got = _parameters(name)
        assert {k: v for k, v in got.items() if k not in extra} == want, name
        assert set(got) - set(want) == extra, name
        import papermill
        assert set(papermill.inspect_notebook(str(ROOT / "nbs" / name))) == set(got), name   # papermill reads them all


def test_module_docstrings_link_to_nothing_that_does_not_exist():
    "nbdev writes 'Docs: <url>' into each module from pyproject's Documentation URL; no site hosts these pages."
    for py in (ROOT / "randsmooth").glob("*.py"):
        assert "http" not in (py.read_text().split('"""')[1] if py.read_text().startswith('"""') else ""), py.name


def _shown_code(nb):
    "The code lines the book shows: every code cell but the hidden ones, without nbdev's #| lines."
    import json
    for c in json.loads(nb.read_text())["cells"]:
        lines = "".join(c["source"]).split("\n")
        if c["cell_type"] == "code" and not any(l.replace(" ", "") == "#|hide" for l in lines):
            yield from (l for l in lines if not l.startswith("#|"))


def test_code_fits_the_books_column():
    "The book's code column holds 120 characters at 1280 px (tests/test_book.py checks the pages themselves)."
    long = [(nb.name, len(l), l[:60]) for nb in sorted((ROOT / "nbs").glob("*.ipynb")) for l in _shown_code(nb)
            if len(l) > 118]
    assert not long, long


def test_figure_text_is_at_least_8_points():
    "With figures shown at 0.81 of their size or more (tests/test_book.py), 8 pt is at least 9 px on screen."
    import re
    small = [(nb.name, m) for nb in sorted((ROOT / "nbs").glob("*.ipynb")) for l in _shown_code(nb)
             for m in re.findall(r"(?:fontsize|labelsize)\s*=\s*([0-9.]+)", l) if float(m) < 8]
    assert not small, small
