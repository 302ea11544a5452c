"""gradedrel.results: expected numbers (compare_expected), rendered notebooks that depend on
their content alone (normalise_rendered), and the papermill driver of run_all.sh (render),
on tiny real notebooks executed by papermill."""
import json

import nbformat
import pandas as pd
import pytest

from gradedrel import results
from gradedrel.paths import REPO_ROOT


@pytest.fixture
def expected(tmp_path, monkeypatch):
    """An expectations folder with one file; returns a writer for data/expected/p/NAME.csv."""
    monkeypatch.setenv("GRADEDREL_EXPECTED", str(tmp_path))
    monkeypatch.delenv("GRADEDREL_WRITE_EXPECTED", raising=False)

    def write(name, frame):
        (tmp_path / "p").mkdir(exist_ok=True)
        pd.DataFrame(frame).to_csv(tmp_path / "p" / f"{name}.csv", index=False)
    return write


def test_compare_expected_ok_within_tolerance_fail_beyond(expected):
    expected("n", {"key": ["a", "b"], "expected": [0.5, 0.8], "tolerance": [0.01, 0.001]})
    ok = results.compare_expected(pd.Series({"a": 0.509, "b": 0.8005}), "p", "n", recomputed=True)
    assert ok["key"].tolist() == ["a", "b"] and ok["status"].tolist() == ["OK", "OK"]
    assert ok["diff"].tolist() == pytest.approx([0.009, 0.0005])
    assert ok["tolerance"].tolist() == [0.01, 0.001] and set(ok["source"]) == {"recomputed"}
    # b is 0.0015 off: within a's 0.01 but beyond its own 0.001
    with pytest.raises(results.ExpectedNumberError, match="1 recomputed values differ") as err:
        results.compare_expected(pd.Series({"a": 0.5, "b": 0.8015}), "p", "n", recomputed=True)
    assert "FAIL" in str(err.value) and "0.8015" in str(err.value)
    with pytest.raises(results.ExpectedNumberError, match="2 recomputed values"):
        results.compare_expected(pd.Series({"a": 0.489, "b": 0.7}), "p", "n", recomputed=True)


def test_compare_expected_missing_key(expected):
    expected("n", {"key": ["a", "b"], "expected": [0.5, 0.8], "tolerance": [0.01, 0.01]})
    with pytest.raises(results.ExpectedNumberError, match="1 recomputed values") as err:
        results.compare_expected(pd.Series({"a": 0.5, "other": 0.8}), "p", "n", recomputed=True)
    assert "missing" in str(err.value)
    # a NaN observed value is missing too
    with pytest.raises(results.ExpectedNumberError, match="missing"):
        results.compare_expected(pd.Series({"a": 0.5, "b": float("nan")}), "p", "n", recomputed=True)


def test_compare_expected_stored_not_recomputed_never_raises(expected):
    expected("n", {"key": ["a", "b", "c"], "expected": [0.5, 0.8, 0.1], "tolerance": [0.01] * 3})
    table = results.compare_expected(pd.Series({"a": 0.5, "b": 0.9}), "p", "n", recomputed=False)
    assert dict(zip(table["key"], table["status"])) == {"a": "OK", "b": "FAIL", "c": "missing"}
    assert set(table["source"]) == {"stored, not recomputed"}


def test_compare_expected_tolerance_column_default(expected):
    # no tolerance column: default_tolerance for every key; a blank cell: the default too
    expected("bare", {"key": ["a", "b"], "expected": [0.5, 0.5]})
    table = results.compare_expected(pd.Series({"a": 0.509, "b": 0.511}), "p", "bare", recomputed=False)
    assert table["tolerance"].tolist() == [0.01, 0.01]
    assert table["status"].tolist() == ["OK", "FAIL"]
    table = results.compare_expected(pd.Series({"a": 0.509, "b": 0.511}), "p", "bare", recomputed=False,
                                     default_tolerance=0.02)
    assert table["status"].tolist() == ["OK", "OK"]
    expected("blank", {"key": ["a", "b"], "expected": [0.5, 0.5], "tolerance": [0.0, None]})
    table = results.compare_expected(pd.Series({"a": 0.5001, "b": 0.5001}), "p", "blank", recomputed=False)
    assert table["tolerance"].tolist() == [0.0, 0.01] and table["status"].tolist() == ["FAIL", "OK"]


def test_compare_expected_without_a_file(expected, tmp_path, monkeypatch):
    assert results.compare_expected(pd.Series({"a": 1.0}), "p", "none", recomputed=True) is None
    monkeypatch.setenv("GRADEDREL_WRITE_EXPECTED", "1")    # a maintainer's first run writes it
    first = results.compare_expected(pd.Series({"a": 1.0, "b": None}), "p", "new", recomputed=True)
    assert first["key"].tolist() == ["a"] and first["status"].tolist() == ["OK"]
    written = pd.read_csv(tmp_path / "p" / "new.csv")
    assert written.to_dict("list") == {"key": ["a"], "expected": [1.0], "tolerance": [0.01]}


# --- rendered notebooks -------------------------------------------------------------------

def tiny_notebook(path, body: str):
    """A notebook with a `parameters` cell (papermill injects after it) and one code cell."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


PRINTS_PATHS = ("from gradedrel.paths import REPO_ROOT\n"
                "import time\n"
                "print(REPO_ROOT / 'data' / 'results', x)\n"
                "print('root:', REPO_ROOT)\n"
                "time.sleep(0.05)\n"
                "REPO_ROOT / 'figures'")


def run_papermill(source, out, **parameters):
    import papermill
    papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(source.parent))
    return out


@pytest.mark.notebook
def test_normalise_rendered_leaves_content_alone(tmp_path):
    """Two papermill runs of one notebook differ (times, durations, the injected cell's
    fresh id); normalised, they are the same bytes, with no absolute path of the checkout,
    and a second normalisation changes nothing."""
    source = tiny_notebook(tmp_path / "tiny.ipynb", PRINTS_PATHS)
    a = tmp_path / "a.ipynb"
    runs = []
    for _ in range(2):                      # the same rendering, twice
        run_papermill(source, a, x=2)
        raw = a.read_bytes()
        results.normalise_rendered(a)
        runs.append((raw, a.read_bytes()))
    (raw1, once), (raw2, twice) = runs
    assert raw1 != raw2 and str(REPO_ROOT).encode() in raw1 and b"start_time" in raw1
    assert once == twice
    results.normalise_rendered(a)
    assert a.read_bytes() == once                                    # idempotent
    text = once.decode()
    assert str(REPO_ROOT) not in text
    for key in ("start_time", "end_time", "duration", "environment_variables", '"execution"'):
        assert key not in text, key
    nb = nbformat.read(a, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and injected[0].id == "injected-parameters"
    assert "x = 2" in injected[0].source
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert printed == "data/results 2\nroot: .\n"                   # relative to the checkout
    assert nb.cells[-1].outputs[-1]["data"]["text/plain"] == "PosixPath('figures')"
    pm = nb.metadata["papermill"]
    assert pm["parameters"] == {"x": 2}
    assert pm["input_path"] == str(source) and pm["output_path"] == str(a)   # outside the checkout


def test_normalise_rendered_relativises_papermill_paths(tmp_path):
    """Paths under the checkout in papermill's metadata and in every text output become
    relative (the checkout itself "."); other paths stay."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    cell.metadata["papermill"] = {"duration": 1.5, "status": "completed"}
    cell.outputs = [nbformat.v4.new_output("stream", text=f"{REPO_ROOT}/data/x.csv and /tmp/y\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": f"'{REPO_ROOT}'",
                                                                  "text/html": f"<b>{REPO_ROOT}/f</b>"},
                                           execution_count=1)]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"input_path": f"{REPO_ROOT}/notebooks/00.ipynb",
                                "output_path": f"{REPO_ROOT}/notebooks/rendered/x/00.ipynb",
                                "start_time": "t0", "end_time": "t1", "duration": 3.0,
                                "environment_variables": {}, "parameters": {"profile": "x"}}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    results.normalise_rendered(path)
    out = nbformat.read(path, as_version=4)
    assert out.metadata["papermill"] == {"input_path": "notebooks/00.ipynb",
                                         "output_path": "notebooks/rendered/x/00.ipynb",
                                         "parameters": {"profile": "x"}}
    c = out.cells[0]
    assert "execution" not in c.metadata and c.metadata["papermill"] == {}
    assert c.outputs[0]["text"] == "data/x.csv and /tmp/y\n"
    assert c.outputs[1]["data"] == {"text/plain": "'.'", "text/html": "<b>f</b>"}


@pytest.mark.notebook
def test_render_runs_a_plan_and_normalises(tmp_path, capsys):
    source = tiny_notebook(tmp_path / "07_tiny.ipynb", PRINTS_PATHS)
    out_dir = tmp_path / "rendered"
    code = results.render([f"{source}\t{json.dumps({'x': 5})}\n", "\n"], out_dir, "p", "redraw")
    assert code == 0
    rendered = out_dir / "07_tiny.ipynb"
    text = rendered.read_text()
    assert str(REPO_ROOT) not in text and "start_time" not in text
    nb = nbformat.read(rendered, as_version=4)
    assert "".join(o.get("text", "") for o in nb.cells[-1].outputs).startswith("data/results 5\n")
    before = rendered.read_bytes()
    results.normalise_rendered(rendered)
    assert rendered.read_bytes() == before                           # already normalised
    assert "== 07_tiny.ipynb [p, redraw]" in capsys.readouterr().err


@pytest.mark.notebook
def test_render_returns_1_and_names_the_notebook_whose_cell_raises(tmp_path, capsys):
    bad = tiny_notebook(tmp_path / "08_bad.ipynb", "raise ValueError('no such table: t' + str(x))")
    after = tiny_notebook(tmp_path / "09_after.ipynb", "print(x)")
    out_dir = tmp_path / "rendered"
    plan = [f"{bad}\t{{}}\n", f"{after}\t{{}}\n"]
    assert results.render(plan, out_dir, "p", "redraw") == 1
    err = capsys.readouterr().err
    assert "run_all.sh: notebook 08_bad.ipynb failed (profile p)" in err
    assert "no such table: t1" in err
    assert not (out_dir / "09_after.ipynb").exists()                # stopped at the failure
    failed = out_dir / "08_bad.ipynb"                                # kept, normalised, readable
    assert failed.exists() and "start_time" not in failed.read_text()


def test_printed_text_split_into_chunks_is_joined_per_stream():
    """How the kernel flushes a print (one chunk or two) must not change a rendering."""
    import nbformat

    from gradedrel.results import merged_streams

    def stream(name, text):
        return nbformat.v4.new_output("stream", name=name, text=text)
    one = [stream("stdout", "a line\nanother\n")]
    two = [stream("stdout", "a line\n"), stream("stdout", "another\n")]
    assert merged_streams(two) == one
    mixed = [stream("stdout", "a\n"), stream("stderr", "warn\n"), stream("stdout", "b\n"),
             nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
             stream("stdout", "c\n"), stream("stdout", "d\n")]
    out = merged_streams(mixed)
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in out] == [
        ("stream", "stdout", "a\n"), ("stream", "stderr", "warn\n"), ("stream", "stdout", "b\n"),
        ("execute_result", None, None), ("stream", "stdout", "c\nd\n")]
