"""The notebooks of notebooks/: committed without outputs, and each runs top to bottom as it is
(nbclient, a real IPython kernel), drawing every plot it asks for.

Their budgets are small (a few hundred training steps, a few parts): about 50 s for the three
on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.stem: path for path in sorted((REPO / "notebooks").glob("*.ipynb"))}
DRAWS = ("plt.", "imshow(")


def test_the_three_notebooks_are_there():
    assert set(NOTEBOOKS) == {"quickstart", "layout_planning", "sim_to_real"}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_a_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (name, index)
        assert "execution" not in cell.metadata, (name, index)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_a_notebook_runs_as_committed(name, tmp_path):
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    # The notebook's working directory is tmp_path: its runs/ land there.
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        kinds = [output.output_type for output in cell.outputs]
        assert "error" not in kinds, (name, index)
        if any(marker in cell.source for marker in DRAWS):
            # A plot that does not show is a library that switched the notebook's backend.
            assert any("image/png" in output.get("data", {}) for output in cell.outputs), \
                (name, index, cell.source[:80])
    assert (tmp_path / "runs" / "notebooks" / name).is_dir()
