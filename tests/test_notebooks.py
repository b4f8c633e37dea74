"""Every notebook in examples/ runs from top to bottom without raising.

Notebooks are discovered by glob, so a new one is tested automatically. They run in
a fresh kernel (float32 and default dtype promotion, as a user would run them) with
matplotlib's non-interactive Agg backend.
"""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient


EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell, generous for a loaded CI machine


def test_examples_exist():
    assert len(NOTEBOOKS) >= 4, f"expected the example notebooks in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # inherited by the kernel process
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
