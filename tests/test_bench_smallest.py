"""
The benchmark itself, on its smallest plan (one engine host, one round): it must run to
its end, so that a change elsewhere (an exit code, a message) cannot break it unseen.
Its numbers are not checked: speed is measured by the benchmark, never asserted here.
"""

import subprocess
import sys

import pytest

from tests.conftest import PROJECT
from tests.sshhosts import why_not_available


def test_the_benchmark_runs_to_its_end_on_its_smallest_plan(tmp_path):
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    out = subprocess.run([sys.executable, "-m", "bench", "--smallest", "--out", str(tmp_path)],
                         cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    results = (tmp_path / "results.md").read_text()
    for row in ("| 1 x 1 |", "| cluster.status |", "| cluster.run true |",
                "`kill -9` of an engine -> its successor registered", "`fab -l`",
                "`kill -9` of the controller -> first task answered through a client made before",
                "| fab cluster.up (cores / engines threads each) |",
                "| one read of the data (2 hub requests), by the page |",
                "| its size, 100,000 tasks in the window |"):
        assert row in results
    assert (tmp_path / "results.png").stat().st_size > 0
