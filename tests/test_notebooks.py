"""Every notebook executes headless with papermill on the smoke profile, recomputing, and
checks its own numbers: with verify=True each one recomputes a cheap subset and compares it
with data/expected/smoke/ (results.compare_expected), failing on a difference."""
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import needs_xquad, needs_xquad_r

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# 01-05 read what 01 and 03 store in data/results/smoke/ (annotations, the run store) and 06
# reads 00's table: two chains that may run side by side, each in order on one worker
ANNOTATION_CHAIN = ("01", "02", "03", "04", "05")


def in_its_chain(notebook: Path):
    chain = "notebooks-01-05" if notebook.name[:2] in ANNOTATION_CHAIN else "notebooks"
    return pytest.param(notebook, marks=pytest.mark.xdist_group(chain), id=notebook.stem)

pytestmark = [pytest.mark.notebook, pytest.mark.integration, needs_xquad, needs_xquad_r]


def run(notebook: Path, out: Path, **parameters):
    import papermill as pm
    pm.execute_notebook(str(notebook), str(out), cwd=str(notebook.parent), kernel_name="python3",
                        parameters={"profile": "smoke", **parameters}, progress_bar=False)
    import nbformat
    return nbformat.read(out, as_version=4)


def checked(nb) -> str:
    """The text of the expected-numbers table the notebook's last check displayed."""
    for cell in reversed(nb.cells):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if "expected" in text and "tolerance" in text:
                return text
    raise AssertionError("the notebook displayed no comparison with expected numbers")


@pytest.mark.parametrize("notebook", [in_its_chain(nb) for nb in NOTEBOOKS])
def test_notebook_recomputes_and_matches_its_expected_numbers(notebook, tmp_path):
    nb = run(notebook, tmp_path / notebook.name, recompute=True, verify=True)
    text = checked(nb)
    assert " OK " in text and "FAIL" not in text and "missing" not in text
    assert "recomputed" in text and "stored, not recomputed" not in text


def test_a_changed_expected_number_fails_the_check(tmp_path, monkeypatch):
    """The check can fail: the same verification against a copy of data/expected/ with one
    number moved by more than its tolerance stops the notebook."""
    import papermill as pm
    doctored = tmp_path / "expected"
    shutil.copytree(REPO / "data" / "expected", doctored)
    path = doctored / "smoke" / "00_verify.csv"
    table = pd.read_csv(path)
    table.loc[0, "expected"] += 3 * table.loc[0, "tolerance"]
    table.to_csv(path, index=False)
    monkeypatch.setenv("GRADEDREL_EXPECTED", str(doctored))      # the kernel inherits it
    with pytest.raises(pm.PapermillExecutionError, match="ExpectedNumberError"):
        run(NOTEBOOKS[0], tmp_path / "00.ipynb", recompute=False, verify=True)


def test_a_redraw_labels_its_comparison_as_stored(tmp_path):
    nb = run(NOTEBOOKS[0], tmp_path / "00.ipynb", recompute=False, verify=False)
    assert "stored, not recomputed" in checked(nb)


@pytest.mark.xdist_group("redraw")      # reads only data/results/xquad/: free to run beside the smoke runs
def test_the_main_job_redraws_from_stored_tables_alone(tmp_path, monkeypatch):
    """Every notebook on the xquad profile, as ./run_all.sh runs them, against a copy of the
    committed results: loading a model, starting a server or training raises
    (GRADEDREL_REDRAW_ONLY), and every table the redraw writes is byte for byte the
    committed one."""
    data = tmp_path / "data"
    for part in ("results/xquad", "expected", "paper"):
        shutil.copytree(REPO / "data" / part, data / part)
    monkeypatch.setenv("GRADEDREL_DATA", str(data))
    monkeypatch.setenv("GRADEDREL_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("GRADEDREL_REDRAW_ONLY", "1")
    import papermill as pm
    for notebook in NOTEBOOKS:
        pm.execute_notebook(str(notebook), str(tmp_path / notebook.name), cwd=str(notebook.parent),
                            kernel_name="python3", parameters={"profile": "xquad"}, progress_bar=False)
    committed = REPO / "data"
    changed = [p.relative_to(data) for p in (data / "results" / "xquad").rglob("*") if p.is_file()
               and not ((committed / p.relative_to(data)).is_file()
                        and p.read_bytes() == (committed / p.relative_to(data)).read_bytes())]
    assert changed == []
    assert len(list((tmp_path / "figures" / "xquad").glob("*.png"))) >= 5
