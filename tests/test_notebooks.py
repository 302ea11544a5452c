"""The notebooks as run_all.sh runs them. On the smoke profile each recomputes
(./run_all.sh --recompute --only NN), then ./run_all.sh --verify recomputes each one's cheap
subset and compares it with data/expected/smoke/ (results.compare_expected), and a doctored
copy of the expectations makes every notebook fail. On the xquad profile the main job redraws
in a copy of the work tree and must reproduce the committed outputs byte for byte."""
import os
import re
import shutil
import subprocess
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


def run_all(*args, env=None, timeout=1200) -> subprocess.CompletedProcess:
    """./run_all.sh itself, as a user runs it (it sources env.sh, checks its arguments and
    renders into notebooks/rendered/PROFILE/)."""
    return subprocess.run(["./run_all.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def chains():
    """Each chain of notebooks, as (xdist group, its notebook numbers)."""
    numbers = [nb.name[:2] for nb in NOTEBOOKS]
    first = [n for n in numbers if n in ANNOTATION_CHAIN]
    return [("notebooks-01-05", first), ("notebooks", [n for n in numbers if n not in first])]


@pytest.mark.parametrize("notebook", [in_its_chain(nb) for nb in NOTEBOOKS])
def test_notebook_recomputes_on_the_smoke_profile(notebook):
    """./run_all.sh --recompute --profile smoke --only NN: what CI's verification then reads."""
    done = run_all("--recompute", "--profile", "smoke", "--only", notebook.name[:2])
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.parametrize("group, numbers", [pytest.param(g, n, marks=pytest.mark.xdist_group(g), id=g)
                                            for g, n in chains()])
def test_run_all_verify_matches_the_expected_numbers(group, numbers):
    """./run_all.sh --verify --profile smoke: each notebook recomputes its cheap subset and sets
    it beside data/expected/smoke/; every row is recomputed and within its tolerance."""
    done = run_all("--verify", "--profile", "smoke", "--only", ",".join(numbers))
    assert done.returncode == 0, done.stderr[-4000:]
    import nbformat
    for number in numbers:
        rendered, = (REPO / "notebooks" / "rendered" / "verify-smoke").glob(f"{number}_*.ipynb")
        text = checked(nbformat.read(rendered, as_version=4))
        assert " OK " in text and "FAIL" not in text and "missing" not in text, text
        assert "recomputed" in text and "stored, not recomputed" not in text, text


@pytest.mark.parametrize("group, numbers", [pytest.param(g, n, marks=pytest.mark.xdist_group(g), id=g)
                                            for g, n in chains()])
def test_a_changed_expected_number_fails_every_notebooks_verification(group, numbers, tmp_path):
    """The check can fail, in every notebook: against a copy of data/expected/ with the first
    number of each notebook's file moved by more than its tolerance, ./run_all.sh --verify
    --keep-going names each notebook as failed with ExpectedNumberError, and exits non-zero."""
    doctored = tmp_path / "expected"
    shutil.copytree(REPO / "data" / "expected", doctored)
    for number in numbers:
        path = doctored / "smoke" / f"{number}_verify.csv"
        table = pd.read_csv(path, dtype={"expected": float})
        table.loc[0, "expected"] += 3 * table.loc[0, "tolerance"] + 0.5
        table.to_csv(path, index=False)
    done = run_all("--verify", "--keep-going", "--profile", "smoke", "--only", ",".join(numbers),
                   env={"GRADEDREL_EXPECTED": str(doctored)})       # the kernels inherit it
    assert done.returncode != 0
    failed = re.search(r"notebooks failed: (.*)", done.stderr)
    assert failed, done.stderr[-4000:]
    assert sorted(name[:2] for name in failed.group(1).split()) == sorted(numbers)
    assert done.stderr.count("ExpectedNumberError") >= len(numbers)


def test_verify_refuses_a_profile_without_expected_numbers():
    done = run_all("--verify", "--profile", "xquad-full", "--only", "02")
    assert done.returncode != 0
    assert "--verify needs expected numbers" in done.stderr and "xquad-full" in done.stderr


def test_a_redraw_labels_its_comparison_as_stored(tmp_path):
    nb = run(NOTEBOOKS[0], tmp_path / "00.ipynb", recompute=False, verify=False)
    assert "stored, not recomputed" in checked(nb)


def worktree_files() -> list[str]:
    """The files git would commit here: tracked, and untracked but not ignored."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


OUTPUTS = ("data/results/xquad", "notebooks/rendered/xquad", "figures/xquad")


def redraw_in_a_copy(tmp_path, *args, plant=None):
    """./run_all.sh ARGS in a copy of this work tree, as the main-job test runs it: only
    redrawing (GRADEDREL_REDRAW_ONLY), every figure checked strictly for overlapping text
    (GRADEDREL_FIGURE_CHECK=strict); `plant(copy)` may change the copy first."""
    copy = tmp_path / "repo"
    files = worktree_files()
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    (copy / ".venv").symlink_to(REPO / ".venv")
    if plant:
        plant(copy)
    env = {**os.environ, "GRADEDREL_REDRAW_ONLY": "1", "PYTHONPATH": str(copy / "lib"),
           "GRADEDREL_DATA": str(copy / "data"), "GRADEDREL_FIGURES": str(copy / "figures"),
           "GRADEDREL_FIGURE_CHECK": "strict"}
    env.pop("GRADEDREL_EXPECTED", None)
    done = subprocess.run(["./run_all.sh", *args], cwd=copy, capture_output=True, text=True,
                          timeout=900, env=env)
    return copy, files, done


@pytest.mark.xdist_group("redraw")      # reads only data/results/xquad/: free to run beside the smoke runs
def test_the_main_job_redraws_exactly_what_is_committed(tmp_path):
    """./run_all.sh, the main job, in a copy of this work tree: loading a model, starting a
    server or training raises (GRADEDREL_REDRAW_ONLY), and afterwards the copy's tables,
    rendered notebooks and figures are byte for byte what is committed here, and nothing new
    appeared: `git status` stays clean after the main job, and a stale committed rendering
    (a notebook or profile changed since it was drawn) fails here. No figure has text that
    overlaps other text or leaves its heatmap cell (save_figure's check, strict here)."""
    # every figure is drawn by the main job: the copy starts without them, so a committed
    # figure that no notebook draws any more (stale) is found as well
    copy, files, done = redraw_in_a_copy(tmp_path, plant=lambda c: shutil.rmtree(c / "figures" / "xquad"))
    assert done.returncode == 0, done.stderr[-4000:]
    tracked = set(files)
    after = {str(p.relative_to(copy)) for out in OUTPUTS for p in (copy / out).rglob("*") if p.is_file()}
    new = sorted(after - tracked)
    changed = sorted(f for f in after & tracked if (copy / f).read_bytes() != (REPO / f).read_bytes())
    orphans = sorted(f for f in tracked - after if f.startswith("figures/xquad/"))
    assert (changed, new, orphans) == ([], [], []), "the main job's redraw differs from the committed files"
    assert len([f for f in after if f.startswith("figures/xquad/") and f.endswith(".png")]) >= 5


@pytest.mark.xdist_group("redraw")
def test_the_main_job_fails_on_a_figure_with_overlapping_text(tmp_path):
    """The planted overlap: notebook 00's heatmap labels at 30 pt, wider than their cells.
    The same redraw (--only 00) stops at that figure and names it and the texts."""
    def plant(copy):
        nb = copy / "notebooks" / "00_zero_shot_baseline.ipynb"
        source = nb.read_text()
        assert 'annot_kws={\\"size\\": 8}' in source
        nb.write_text(source.replace('annot_kws={\\"size\\": 8}', 'annot_kws={\\"size\\": 30}'))

    _, _, done = redraw_in_a_copy(tmp_path, "--only", "00", plant=plant)
    assert done.returncode != 0
    assert "FigureTextError" in done.stderr, done.stderr[-4000:]
    assert "figures/xquad/00_crosslingual_ndcg10.png" in done.stderr and "overlaps" in done.stderr
