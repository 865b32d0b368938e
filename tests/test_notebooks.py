"""The notebooks in notebooks/ run top to bottom with a real Jupyter kernel.

Each notebook asserts the lecture's claims it reproduces in its own cells, so an
execution error here is either a broken notebook or a claim that no longer holds.
The kernel imports jopt from this checkout (``PYTHONPATH``), so the notebooks' install
cell is skipped and the environment is left alone.  Executing them is marked
``notebook`` (deselect with ``-m "not notebook"``); the cheap checks that the committed
files carry no outputs and match ``tools/build_notebooks.py`` always run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_training_loop", "02_loss_surfaces", "03_initialization"]
CELL_TIMEOUT_S = 120


def _generator():
    path = ROOT / "tools" / "build_notebooks.py"
    spec = importlib.util.spec_from_file_location("build_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_matches_generator(name):
    # Compared cell by cell rather than byte for byte, so that another nbformat
    # version's JSON layout does not count as a change.
    on_disk = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    built = _generator().build(name)

    def cells(notebook):
        return [(cell.cell_type, cell.source) for cell in notebook.cells]

    assert cells(on_disk) == cells(built), (
        f"notebooks/{name}.ipynb is stale: run `python tools/build_notebooks.py`"
    )
    assert on_disk.metadata == built.metadata


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_starts_with_badge_and_install(name):
    generator = _generator()
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    first, second = notebook.cells[0], notebook.cells[1]
    assert first.cell_type == "markdown"
    assert generator.colab_url(name) in first.source
    assert "colab-badge.svg" in first.source
    assert second.cell_type == "code" and 'find_spec("jopt") is None' in second.source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_imports_nothing_private(name):
    # Notebooks use jopt's public API only (jopt.lecture included), as readers would.
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            private = re.findall(r"\bjopt(?:\.\w+)*\._\w+", cell.source)
            private += re.findall(r"from jopt[\w.]* import [^\n]*\b_\w+", cell.source)
            assert not private, f"{name} cell {index} uses {private}"


def test_every_notebook_is_built():
    assert sorted(_generator().NOTEBOOKS) == NOTEBOOKS
    assert sorted(path.stem for path in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS


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
