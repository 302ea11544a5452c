"""pytest plugin (pyproject.toml's addopts: `-p xdist_crash_stop`): a pytest-xdist worker that
dies ends the whole run at once, naming the test it was running.

Without it a crash either hangs the run (pytest-xdist's loadgroup/loadscope scheduler after a
worker is replaced: pytest-dev/pytest-xdist#1378, #1323) or, with --max-worker-restart=0
alone, waits until the other worker has run every test it was sent (a whole xdist_group:
minutes for the notebooks). On the controller, the crash report pytest-xdist makes
("worker 'gw1' crashed while running 'tests/test_x.py::test_y'") is logged, then
pytest.exit stops the session; pytest-xdist's teardown then ends the other workers.
tests/test_suite_crash.py runs a planted crash with these options."""
import pytest

CRASH = "crashed while running"


@pytest.hookimpl(trylast=True)      # after the terminal reporter has counted the failure
def pytest_runtest_logreport(report):
    if report.when == "???" and CRASH in str(report.longrepr):
        pytest.exit(f"{report.longrepr}: stopping the run (a crashed worker ends it; "
                    "tests/xdist_crash_stop.py)", returncode=1)
