"""A test that kills its pytest-xdist worker fails the suite within seconds, naming the test,
under the project's own pytest options (pyproject.toml's addopts, run_tests.sh's two workers).

The planted suite reproduces the condition under which the real one hung or waited: several
xdist groups, one finished before the crash, and a long group on the other worker. Without
tests/xdist_crash_stop.py the run waits for that group (LONG seconds, or for ever when a
replaced worker meets pytest-xdist#1378); with it, the run ends a few seconds after the crash."""
import subprocess
import sys
import time

import pytest

from conftest import REPO

LONG = 120
PLANTED = {
    "test_1_quick.py": 'import pytest\npytestmark = pytest.mark.xdist_group("g1")\n'
                       "def test_a(): pass\ndef test_b(): pass\n",
    "test_2_crash.py": 'import os, time, pytest\npytestmark = pytest.mark.xdist_group("g2")\n'
                       "def test_before(): time.sleep(3)\ndef test_crash(): os.abort()\n"
                       "def test_after(): pass\n",
    "test_3_long.py": f'import time, pytest\npytestmark = pytest.mark.xdist_group("g3")\n'
                      f"def test_long(): time.sleep({LONG})\n",
    "test_4_quick.py": 'import pytest\npytestmark = pytest.mark.xdist_group("g4")\ndef test_c(): pass\n',
}


def workers_option() -> list[str]:
    """run_tests.sh's worker count, read from the script itself."""
    text = (REPO / "run_tests.sh").read_text()
    assert '-n "${GRADEDREL_TEST_WORKERS:-2}"' in text, "run_tests.sh no longer runs two workers"
    return ["-n", "2"]


@pytest.mark.xdist_group("crash")
def test_a_crashed_worker_fails_the_suite_within_seconds_naming_the_test(tmp_path):
    for name, source in PLANTED.items():
        (tmp_path / name).write_text(source)
    command = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
               str(tmp_path), "-p", "no:cacheprovider", *workers_option(), str(tmp_path)]
    start = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=LONG - 30,
                              cwd=tmp_path, start_new_session=True)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the planted crash did not end the run in {LONG - 30} s:\n{err.stdout}")
    seconds = time.monotonic() - start
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "crashed while running 'test_2_crash.py::test_crash" in out
    assert "FAILED test_2_crash.py::test_crash" in out
    assert seconds < 60, f"the run took {seconds:.0f} s after a crash"
