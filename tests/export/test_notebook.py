"""The analytics notebook runs end to end against a generated dataset, and is kept without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from coredumps.export import LocalDestination, export_dataset
from tests.conftest import REPO
from tests.export.generate import Generated

NOTEBOOK = REPO / "notebooks" / "coredump_analytics.ipynb"


def test_notebook_is_kept_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
    assert 'DATASET = os.environ.get("COREDUMP_DATASET"' in "".join(code[0]["source"])


@pytest.mark.slow
def test_notebook_runs_against_a_generated_dataset(
    sessions: sessionmaker[Session], generated: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat, nbclient and ipykernel")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient and ipykernel")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel")
    export_dataset(sessions, LocalDestination(tmp_path / "parquet"))
    monkeypatch.setenv("COREDUMP_DATASET", str(tmp_path / "parquet"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert f"{generated.coredumps} coredumps, {generated.crash_groups} crash groups" in text
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 6
