"""
The benchmark's own plumbing, without fake hosts: silent hosts bind as servers do, and
a measurement that cannot be made is named while the others are still made and written.
"""

import contextlib
import errno
import os
import socket
import sys
from types import SimpleNamespace

import pytest

import bench.__main__ as bench_main
from bench import blas, dashboard, healing, methods, report

SILENT = 200  # 127.0.3.200: past the silent hosts the benchmark itself uses


@pytest.mark.skipif(os.geteuid() != 0, reason="port 22 needs root, as the benchmark itself does")
def test_silent_hosts_bind_an_address_whose_port_has_a_connection_in_time_wait():
    address = (f"127.0.3.{SILENT}", 22)
    with socket.create_server(address) as server:  # as servers bind: SO_REUSEADDR
        client = socket.create_connection(address)
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: it is the one left in TIME_WAIT
        client.close()
    with methods.silent_hosts(1, SILENT) as silent:
        assert silent == [address[0]]
        socket.create_connection(address, timeout=5).close()


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """`bench.__main__` with every measurement made up (as ``times`` and ``control`` in the
    tables' tests): no fake host, no cluster; returns the results folder."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))  # main sets it: restored after the test
    monkeypatch.setattr(bench_main, "why_not_available", lambda: None)
    monkeypatch.setattr(methods, "cluster_processes", lambda: [])
    monkeypatch.setattr(bench_main, "FakeHosts", lambda count, first: contextlib.nullcontext(
        SimpleNamespace(hosts=[f"host{n}" for n in range(count)])))
    monkeypatch.setattr(bench_main, "startup", lambda hosts, folder, layouts, rounds: {
        (method, step, layout.label): [1.0] for method in ("fab", "ipcluster-ssh", "floor")
        for step in ("up", "down") for layout in layouts})
    monkeypatch.setattr(bench_main, "control_path", lambda hosts, folder, sizes, rounds: {
        (task, n): [1.0] for task in (*report.CONTROL_TASKS, report.FLOOR) for n in sizes})
    monkeypatch.setattr(bench_main, "threads", lambda hosts, folder, sizes: {n: 9 for n in sizes})
    monkeypatch.setattr(healing, "measure", lambda *args: {"restart": [1.0], "memory": [1.0]})
    monkeypatch.setattr(healing, "measure_controller", lambda *args: {})
    monkeypatch.setattr(blas, "measure", lambda *args: {run: [1.0] for run in blas.RUNS})
    monkeypatch.setattr(dashboard, "measure", lambda *args: {key: [1.0] for key in (
        "read_few", "read_many", "payload_many", "queue_status", "open", "closed", "hub_reads",
        "jupyter_open", "jupyter_closed")})
    monkeypatch.setattr(methods, "fab_list", lambda: 0.1)
    monkeypatch.setattr(report, "plot", lambda times, layouts, path: path.write_bytes(b"png"))
    return tmp_path / "out"


def run_main(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["python -m bench", *args])
    with pytest.raises(SystemExit) as exit_:
        bench_main.main()
    return exit_.value.code


def test_a_measurement_that_cannot_be_made_is_named_and_the_others_are_made(stubbed, monkeypatch,
                                                                          capsys):
    def taken(*args):
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    monkeypatch.setattr(bench_main, "threads", taken)
    code = run_main(monkeypatch, "--quick", "--out", str(stubbed))
    assert code == f"error: not measured: peak threads; the others are in {stubbed / 'results.md'}"
    printed = capsys.readouterr()
    assert ("error: peak threads not measured: OSError: [Errno 98] Address already in use"
            in printed.err.splitlines())
    results = (stubbed / "results.md").read_text()
    assert printed.out == results + "\n"
    assert "Not measured: peak threads (OSError: [Errno 98] Address already in use)." in results
    for other in ("| 2 x 2 |", "| cluster.status |", "`kill -9` of an engine", "`fab -l`: 0.10 s",
                  "| fab -l < 0.5 s | 0.10 | yes |", "| tasks/s, no page |", "products/s per engine"):
        assert other in results


def test_a_benchmark_run_alone_that_cannot_measure_says_why_without_a_traceback(stubbed, monkeypatch,
                                                                               capsys):
    def fails(*args):
        raise methods.BenchError("fab cluster.up exited 1")
    monkeypatch.setattr(dashboard, "measure", fails)
    assert run_main(monkeypatch, "--dashboard", "--out", str(stubbed)) == 1
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("", "error: dashboard not measured: BenchError: fab "
                                              "cluster.up exited 1\n")
    assert not (stubbed / "dashboard.md").exists()


def test_the_check_for_cluster_processes_passes_over_those_that_started_the_bench():
    """A pytest whose command line names ``test_e2e_jupyter_token.py`` runs the benchmark:
    that is no cluster process left on the machine (the bench refused to start, seen in CI)."""
    import subprocess
    code = "from bench.methods import cluster_processes; print(repr(cluster_processes()))"
    marker = "test_e2e_jupyter_token_marker_4711.py"
    out = subprocess.run(["bash", "-c", f"{sys.executable} -c '{code}'; : {marker}"],
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0 and out.stdout.startswith("["), out.stderr
    assert marker not in out.stdout
