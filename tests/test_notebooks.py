"""The notebooks in notebooks/: paired sources, and runs top to bottom with a real kernel.

Each notebook is a pair: ``NN_name.py`` (its source, jupytext's percent format, linted
by ruff) and ``NN_name.ipynb`` (committed without outputs).  The cheap checks always
run: every pair agrees cell for cell, the sources pass ruff, the Colab badge and the
install cell point at the repository of ``notebooks/colab.toml``, and no notebook
imports private names.

Each notebook asserts the lecture's claims it reproduces in its own cells, so an
execution error is either a broken notebook or a claim that no longer holds.  The
kernel imports jopt from this checkout (``PYTHONPATH``), so the notebooks' install
cell is skipped and the environment is left alone.  Executing them is marked
``notebook`` (deselect with ``-m "not notebook"``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: jupytext's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_training_loop", "02_loss_surfaces", "03_initialization"]
CELL_TIMEOUT_S = 120


def _colab() -> dict[str, str]:
    return tomllib.loads((NOTEBOOK_DIR / "colab.toml").read_text(encoding="utf-8"))


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_every_notebook_is_a_pair():
    assert sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS
    assert sorted(path.stem for path in NOTEBOOK_DIR.glob("*.py")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_pair_agrees(name):
    # Compared cell by cell rather than byte for byte, so that another nbformat
    # version's JSON layout does not count as a change.
    source = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    committed = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert _cells(committed) == _cells(source), (
        f"notebooks/{name}.ipynb differs from its source: run `jupytext --sync notebooks/{name}.py`"
    )
    assert committed.metadata["kernelspec"] == source.metadata["kernelspec"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"


def test_sources_pass_ruff():
    sources = [str(NOTEBOOK_DIR / f"{name}.py") for name in NOTEBOOKS]
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *sources],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_starts_with_badge_and_install(name):
    colab = _colab()
    repository, branch = colab["repository"], colab["branch"]
    notebook = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    first, second = notebook.cells[0], notebook.cells[1]
    badge = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{repository}/blob/{branch}/notebooks/"
        f"{name}.ipynb)"
    )
    assert first.cell_type == "markdown" and first.source.startswith(badge)
    assert second.cell_type == "code" and 'find_spec("jopt") is None' in second.source
    requirement = f"jopt[examples] @ git+https://github.com/{repository}.git@{branch}"
    assert f'requirement = "{requirement}"' in second.source
    # No other repository is named anywhere in the notebook.
    pattern = r"github(?:\.com)?/([\w.-]+/[\w.-]+?)(?:\.git|/blob|@|\))"
    named = set(re.findall(pattern, str(notebook)))
    assert named == {repository}, named


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_imports_nothing_private(name):
    # Notebooks use jopt's public API only (jopt.lecture included), as readers would.
    notebook = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            private = re.findall(r"\bjopt(?:\.\w+)*\._\w+", cell.source)
            private += re.findall(r"from jopt[\w.]* import [^\n]*\b_\w+", cell.source)
            assert not private, f"{name} cell {index} uses {private}"


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, monkeypatch, record_property, capsys):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    # The kernel inherits this environment: import jopt from the checkout, run in the
    # default float32 (the suite's x64 switch is a config call, not an env var), and
    # keep matplotlib on the kernel's inline backend.
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    wall = time.perf_counter() - start
    record_property("wall_s", round(wall, 1))
    with capsys.disabled():  # shown even without -s: the 90 s budget is worth watching
        print(f"\n{name}.ipynb executed in {wall:.1f} s", end="")
