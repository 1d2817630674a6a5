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
    assert report == {"controller": True, "engines": LABELS, "jupyter": False, "error": ""}
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
