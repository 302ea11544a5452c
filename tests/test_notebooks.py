"""Every notebook executes headless with papermill on the smoke profile."""
from pathlib import Path

import pytest
from conftest import needs_xquad, needs_xquad_r

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = [pytest.mark.notebook, pytest.mark.integration, needs_xquad, needs_xquad_r]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_smoke_profile(notebook, tmp_path):
    import papermill as pm
    out = tmp_path / notebook.name
    pm.execute_notebook(str(notebook), str(out), cwd=str(notebook.parent), kernel_name="python3",
                        parameters={"profile": "smoke", "recompute": True}, progress_bar=False)
    assert out.exists()
    import nbformat
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
