"""The notebooks in `notebooks/` run top to bottom (nbclient, a `python3` kernel from this environment), and git
holds them without outputs.

The executed runs are marked `slow` (they train the shipped all-MiniLM-L6-v2 on a slice of the debtags sample);
the quickstart also pushes to the local Hub server (`hub`). The notebooks' own cells assert their figures, so a
cell that raises fails the test with the cell's traceback. Each run prints (past pytest's capture, so the CI log holds it) the cells,
the seconds, the slowest cells and the figure lines the notebook printed.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = {"quickstart.ipynb", "from_simpletransformers.ipynb"}
CELL_TIMEOUT_S = 1800  # a guard against a hung kernel, not a time check (a shared, loaded machine is slow)
FIGURE_LINE = re.compile(r"F1|LRAP|threshold")


def _notebook_paths() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs():
    paths = _notebook_paths()
    assert {path.name for path in paths} >= EXPECTED
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        assert notebook["nbformat"] == 4, path.name
        assert notebook["metadata"]["kernelspec"]["name"] == "python3", path.name
        code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert code_cells, f"{path.name} has no code cells"
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            assert cell["outputs"] == [], (
                f"{path.name} cell {index} has outputs (strip them before committing)"
            )
            assert cell["execution_count"] is None, f"{path.name} cell {index} has an execution count"


def _cell_seconds(cell: Any) -> float:
    """Seconds a cell took, from the timing nbclient records in its metadata (0 when absent)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    start_time, end_time = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in (start, end))
    return (end_time - start_time).total_seconds()


def _stdout(cell: Any) -> str:
    return "".join(
        output.get("text", "")
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def _images(notebook: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") in ("display_data", "execute_result")
    )


def run_notebook(name: str, workdir: Path) -> tuple[Any, float]:
    """Execute `notebooks/<name>` in `workdir` with a fresh `python3` kernel; the executed notebook and its seconds.

    The kernel inherits this process's environment (the Hub fixtures' `HF_ENDPOINT` / `HF_TOKEN`, the row counts).
    A cell that raises raises `nbclient.exceptions.CellExecutionError` here, with the cell and its traceback.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


def report(name: str, notebook: Any, seconds: float, capsys: Any = None) -> list[str]:
    """Print the run's cells, seconds, slowest cells and the figure lines it printed; return those lines.

    With `capsys`, the lines go past pytest's capture, so the CI log holds them.
    """
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    slowest = sorted(
        (
            (index, _cell_seconds(cell))
            for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"
        ),
        key=lambda item: -item[1],
    )[:3]
    figures = [
        line.rstrip()
        for cell in code_cells
        for line in _stdout(cell).splitlines()
        if FIGURE_LINE.search(line)
    ]
    lines = [
        f"\n{name}: {len(notebook.cells)} cells ({len(code_cells)} code) executed in {seconds:.1f} s; "
        f"slowest cells: {', '.join(f'#{index} {took:.1f} s' for index, took in slowest)}",
        *(f"  {line}" for line in figures),
    ]
    with capsys.disabled() if capsys is not None else contextlib.nullcontext():
        print("\n".join(lines))
    return figures


@pytest.mark.slow
@pytest.mark.hub
def test_quickstart_runs_and_pushes(hub_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLCLF_NOTEBOOK_TRAIN_ROWS", "800")
    monkeypatch.setenv("MLCLF_NOTEBOOK_EVAL_ROWS", "500")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    workdir = tmp_path / "work"
    workdir.mkdir()

    notebook, seconds = run_notebook("quickstart.ipynb", workdir)

    figures = report("quickstart.ipynb", notebook, seconds, capsys)
    assert any("held out" in line for line in figures)
    assert _images(notebook) == 2  # the per-label F1 and the threshold-vs-F1 charts were drawn
    pushed = hub_env.files("test-user/mlclf-debtags-minilm")
    assert {"config.json", "model.safetensors", "README.md", "pipeline_multilabel.py"} <= set(pushed)
    assert (workdir / "mlclf-debtags-minilm" / "config.json").is_file()


@pytest.mark.slow
def test_from_simpletransformers_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLCLF_NOTEBOOK_TRAIN_ROWS", "240")
    monkeypatch.setenv("MLCLF_NOTEBOOK_EVAL_ROWS", "120")
    workdir = tmp_path / "work"
    workdir.mkdir()

    notebook, seconds = run_notebook("from_simpletransformers.ipynb", workdir)

    figures = report("from_simpletransformers.ipynb", notebook, seconds, capsys)
    assert any("micro-F1" in line for line in figures)
    assert (workdir / "outputs" / "config.json").is_file()  # simpletransformers' default output_dir
