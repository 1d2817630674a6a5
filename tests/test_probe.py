"""
Unit tests of the probe (``tasks/remote/probe.py``) against a real local controller
(ipyparallel's `Cluster`, started here) and real engines labelled as
``start_engines.sh`` labels them, and a real Jupyter server. No SSH, no root.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import ipyparallel as ipp
import pytest

from tasks.remote import probe

BIN = Path(sys.executable).parent
LABELS = {"nodeA": 2, "nodeB": 1}


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    """A controller of the profile ``probe`` in an IPython dir of its own, and three engines."""
    patch = pytest.MonkeyPatch()
    patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    cluster = ipp.Cluster(profile="probe", cluster_id="", n=0)  # the files ipcontroller writes
    cluster.start_controller_sync()
    engines = [subprocess.Popen([str(BIN / "ipengine"), "--profile=probe",
                                 f"--Session.session={label}/{n}/1", "--log-level=ERROR"])
               for label, count in LABELS.items() for n in range(1, count + 1)]
    client = cluster.connect_client_sync()
    client.wait_for_engines(3, timeout=60)
    yield client, engines
    client.close()
    for engine in engines:
        engine.kill()
    cluster.stop_controller_sync()
    patch.undo()


def test_engine_uuids_are_read_from_the_client_as_ipyparallel_keeps_them(controller):
    client, _ = controller
    uuids = probe.engine_uuids(client)
    assert sorted(uuids) == sorted(client.ids)
    assert sorted(uuid.rsplit("/", 1)[0] for uuid in uuids.values()) == ["nodeA/1", "nodeA/2", "nodeB/1"]


def test_engines_are_counted_per_label_and_waited_for(controller):
    shown = []
    report = probe.probe({"profile": "probe", "expected": LABELS, "wait": 30}, "/nonexistent",
                         shown.append)
    assert report == {"controller": True, "engines": LABELS, "error": "", "jupyter": False,
                      "jupyter_problem": ""}
    assert shown and json.loads(shown[-1][len("progress="):]) == LABELS


def test_a_wait_for_more_engines_than_there_are_ends_at_its_deadline(controller):
    started = time.monotonic()
    report = probe.probe({"profile": "probe", "expected": {"nodeA": 3}, "wait": 1}, "/nonexistent",
                         lambda line: None)
    assert report["engines"] == LABELS and 1 <= time.monotonic() - started < 10


def test_without_a_controller_the_report_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    report = probe.probe({"profile": "nothing"}, "/nonexistent")
    assert report["controller"] is False
    assert report["error"] == "RuntimeError: no client connection file: the controller is not running"


def test_jupyter_answers_only_with_its_token(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert not probe.jupyter_answers(port, tmp_path / "token")
    token = tmp_path / "token"
    token.write_text("a" * 48)
    root = ["--allow-root"] if os.geteuid() == 0 else []
    server = subprocess.Popen([str(BIN / "jupyter"), "server", "--no-browser", "--ip=127.0.0.1",
                               f"--port={port}", f"--ServerApp.root_dir={tmp_path}", *root],
                              env=dict(os.environ, JUPYTER_TOKEN_FILE=str(token)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not probe.jupyter_answers(port, token) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert probe.jupyter_answers(port, token)
        wrong = tmp_path / "wrong"
        wrong.write_text("b" * 48)
        assert not probe.jupyter_answers(port, wrong)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_one_labels_engines_are_shut_down_and_the_others_keep_running(controller):
    client, engines = controller
    targets = probe.shut_down(client, ["nodeB"])
    assert len(targets) == 1
    assert probe.count_by_label(probe.engine_uuids(client)) == {"nodeA": 2}
    engines[2].wait(timeout=30)  # nodeB's engine process ends by itself
    assert [engine.poll() for engine in engines[:2]] == [None, None]
    assert len(set(client[:].apply_sync(os.getpid))) == 2  # both still work


def test_the_probe_runs_as_the_hosts_run_it_a_program_on_stdin(controller):
    source = Path(probe.__file__).read_text()
    out = subprocess.run([sys.executable, "-", json.dumps({"profile": "probe"}), "/nonexistent"],
                         input=source, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1][len("probe="):])
    assert report["controller"] is True and report["engines"] == {"nodeA": 2}


@pytest.fixture
def jupyter_session(tmp_path):
    """A run directory and a live screen session named like a cluster's Jupyter (``NAME-jupyter``)."""
    name = f"probe{os.getpid()}"
    subprocess.run(["screen", "-dmS", f"{name}-jupyter", "sleep", "60"], check=True)
    try:
        yield name, tmp_path
    finally:
        subprocess.run(["screen", "-S", f"{name}-jupyter", "-X", "quit"])


def test_jupyter_that_ended_is_reported_at_once_with_the_last_line_of_its_log(tmp_path):
    (tmp_path / "gone-jupyter.log").write_text(
        "\x1b[32m[I 2026-11-24 23:42:51.662 ServerApp]\x1b[m The port 8891 is already in use.\n"
        "\x1b[35m[C 2026-11-24 23:42:51.662 ServerApp]\x1b[m\x0f ERROR: the Jupyter server could not"
        " be started because port 8891 is not available.\r\n\n")
    args = {"name": "gone", "port": 8891, "jupyter": True, "controller": False, "wait": 60}
    started = time.monotonic()
    report = probe.probe(dict(args, started=True), str(tmp_path))
    assert time.monotonic() - started < 30  # not the 60 s wait
    log = str(tmp_path / "gone-jupyter.log").replace(os.path.expanduser("~"), "~", 1)
    assert report["jupyter_problem"] == (
        "Jupyter exited: ERROR: the Jupyter server could not be started because port 8891 is not"
        f" available. (its log: {log})")
    report = probe.probe(args, str(tmp_path))
    assert report["jupyter_problem"] == "Jupyter is not running: fab master.start starts it"


def test_jupyter_running_on_another_port_than_jupyter_port_is_named(jupyter_session):
    name, run = jupyter_session
    (run / "jupyter.port").write_text("8888\n")
    report = probe.probe({"name": name, "port": 8891, "jupyter": True, "controller": False,
                          "wait": 60}, str(run))
    assert report["jupyter_problem"] == ("Jupyter runs on port 8888, not on JUPYTER_PORT=8891: "
                                         "run fab master.stop, then start it again")


def test_jupyter_alive_but_silent_is_waited_for_until_the_deadline(jupyter_session):
    name, run = jupyter_session
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    started = time.monotonic()
    report = probe.probe({"name": name, "port": port, "jupyter": True, "controller": False,
                          "wait": 1}, str(run))
    assert time.monotonic() - started >= 1
    assert report["jupyter_problem"].startswith(f"Jupyter does not answer on 127.0.0.1:{port}; "
                                                "see its log, ")
