"""
Unit tests of the probe (``tasks/remote/probe.py``) against a real local controller
(ipyparallel's `Cluster`, started here) and real engines labelled as
``start_engines.sh`` labels them, and a real Jupyter server (what it reads of the logs:
tests/test_screens.py). No SSH, no root.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ipyparallel as ipp
import pytest

from tasks.inventory.folder import Settings
from tasks.remote import commands, probe
from tasks.remote import ipp_screens as screens
from tests.spy import spy
from tests.test_screens import NANNY_RESTARTED_LOG
from tests.waiting import wait_until

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
    report = probe.probe({"name": "t", "profile": "probe", "expected": LABELS, "wait": 30}, "/nonexistent",
                         shown.append)
    assert report == {"controller": True, "engines": LABELS, "orphans": [], "error": "",
                      "jupyter": False, "jupyter_problem": ""}
    assert shown and json.loads(shown[-1][len("progress="):]) == LABELS


def test_a_wait_for_more_engines_than_there_are_ends_at_its_deadline(controller):
    started = time.monotonic()
    report = probe.probe({"name": "t", "profile": "probe", "expected": {"nodeA": 3}, "wait": 1}, "/nonexistent",
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
        wait_until(lambda: probe.jupyter_answers(port, token), 60, "Jupyter's answer with the token",
                   interval=0.2)
        wrong = tmp_path / "wrong"
        wrong.write_text("b" * 48)
        assert not probe.jupyter_answers(port, wrong)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a listener as nobody: needs root")
@pytest.mark.parametrize("where", ["loopback", "any6"])
def test_another_users_listener_on_the_port_gets_no_token(tmp_path, where):
    """nobody listens where this user's Jupyter would (127.0.0.1, or [::], which takes IPv4 too):
    the probe says Jupyter is not running, and nothing reaches nobody's listener."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    token = tmp_path / "jupyter.token"
    token.write_text("s" * 48)
    with spy("nobody", port, tmp_path, where) as other:
        assert not probe.jupyter_answers(port, token)
        report = probe.probe({"name": "nosuch", "port": port, "jupyter": True, "controller": False},
                             str(tmp_path))
        assert report["jupyter_problem"] == "Jupyter is not running: fab master.start starts it"
    assert other.heard() == b""


def test_one_labels_engines_are_shut_down_and_the_others_keep_running(controller):
    client, engines = controller
    extra = subprocess.Popen([str(BIN / "ipengine"), "--profile=probe",  # its own: the fixture's
                              "--Session.session=nodeC/1/1", "--log-level=ERROR"])  # stay as they are
    client.wait_for_engines(4, timeout=60)
    targets = probe.shut_down(client, ["nodeC"])
    assert len(targets) == 1
    assert probe.count_by_label(probe.engine_uuids(client)) == LABELS
    extra.wait(timeout=30)  # nodeC's engine process ends by itself
    assert [engine.poll() for engine in engines] == [None, None, None]
    assert len(set(client[:].apply_sync(os.getpid))) == 3  # the others still work


def test_the_probe_runs_as_the_hosts_run_it_unpacked_from_stdin_beside_screens(controller, tmp_path):
    """Its step, run by ``/bin/sh -s`` as on a host, in a folder where ``tasks`` is not
    importable: what it imports was shipped with it, and its folder goes after."""
    settings = Settings(cluster_env=str(BIN.parent), cluster_name="t", ipp_profile="probe")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    (tmp_path / "tmp").mkdir()
    out = subprocess.run(commands.REMOTE_SHELL, shell=True, cwd=tmp_path, capture_output=True, text=True,
                         input=commands.script(settings, commands.probe(settings, jupyter=False)),
                         env=dict(env, HOME=str(tmp_path), TMPDIR=str(tmp_path / "tmp")), timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1][len("probe="):])
    assert report["controller"] is True and report["engines"] == LABELS
    assert list((tmp_path / "tmp").iterdir()) == []


def start_session(name):
    """Start a detached screen session *name* and wait until ``screen -ls`` lists it: under
    load, ``screen -dmS`` returns before its session is listed (28 times in 100, measured)."""
    subprocess.run(["screen", "-dmS", name, "sleep", "60"], check=True)
    wait_until(lambda: screens.session_alive(name), 10, f"screen listing the session {name}", interval=0.02)


@pytest.fixture
def jupyter_session(tmp_path):
    """A run directory and a live screen session named like a cluster's Jupyter (``NAME-jupyter``)."""
    name = f"probe{os.getpid()}"
    start_session(f"{name}-jupyter")
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


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a listener as nobody: needs root")
def test_jupyter_whose_port_another_user_holds_is_named_at_once_and_told_nothing(jupyter_session):
    name, run = jupyter_session
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (run / "jupyter.port").write_text(f"{port}\n")
    (run / "jupyter.token").write_text("s" * 48)
    with spy("nobody", port, run) as other:
        started = time.monotonic()
        report = probe.probe({"name": name, "port": port, "jupyter": True, "controller": False,
                              "wait": 60}, str(run))
        assert time.monotonic() - started < 30
    assert report["jupyter_problem"] == (f"JUPYTER_PORT {port} is taken here by nobody: choose another "
                                         "JUPYTER_PORT in cluster.env, then fab master.stop and fab "
                                         "master.start")
    assert other.heard() == b""


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


def _controller_process():
    """The hub's process of the `controller` fixture (ipyparallel runs it as a module)."""
    import psutil
    return next(p for p in psutil.Process().children(recursive=True)
                if "ipyparallel.controller" in " ".join(p.cmdline()))


@pytest.fixture
def paused_controller(controller):
    """The fixture's controller, stopped (SIGSTOP) as a master too busy to answer would be,
    and resumed after 7 s: longer than the probe's first wait, shorter than its whole."""
    hub = _controller_process()
    hub.suspend()
    resume = threading.Timer(7, hub.resume)
    resume.start()
    yield
    resume.cancel()
    hub.resume()


@pytest.fixture
def screen_folder(tmp_path, monkeypatch):
    """A screen folder of this test's own (``screen -ls`` sees only its sessions)."""
    folder = tmp_path / "screens"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("SCREENDIR", str(folder))
    yield
    subprocess.run(["screen", "-wipe"], capture_output=True)
    for session in probe_sessions():
        subprocess.run(["screen", "-S", session, "-X", "quit"], capture_output=True)


def probe_sessions():
    listing = subprocess.run(["screen", "-ls"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith("\t")]


def test_a_busy_controller_whose_session_runs_is_waited_for(screen_folder, paused_controller):
    start_session("probe-controller")
    started = time.monotonic()
    report = probe.probe({"name": "probe", "profile": "probe"}, "/nonexistent")
    assert report["error"] == "" and report["controller"] is True
    assert report["engines"] == LABELS
    assert time.monotonic() - started >= probe.FIRST_ANSWER  # it did wait past the first


def test_a_silent_controller_without_its_session_is_called_dead_after_the_first_wait(
        screen_folder, paused_controller):
    started = time.monotonic()
    report = probe.probe({"name": "probe", "profile": "probe"}, "/nonexistent")
    took = time.monotonic() - started
    assert report["controller"] is False
    assert report["error"] == ("RuntimeError: no answer, and its screen session has ended: "
                               "the controller is not running")
    assert probe.FIRST_ANSWER <= took < 7  # before the controller came back


def test_the_token_never_goes_to_a_proxy(tmp_path):
    """A stand-in for Jupyter answers 200 to the right token; http_proxy names a listener
    that records whatever reaches it."""
    import http.server

    class Jupyter(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/api/status" and self.headers["Authorization"] == "token " + "t" * 48
            self.send_response(200 if ok else 403)
            self.end_headers()

        def log_message(self, *args):
            pass

    token = tmp_path / "token"
    token.write_text("t" * 48)
    proxy, reached = socket.create_server(("127.0.0.1", 0)), []
    proxy.settimeout(0.1)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jupyter) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
        env["http_proxy"] = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        code = "import sys; from tasks.remote import probe; print(probe.jupyter_answers(*sys.argv[1:]))"
        out = subprocess.run([sys.executable, "-c", code, str(server.server_address[1]), str(token)],
                             capture_output=True, text=True, env=env, timeout=60,
                             cwd=Path(__file__).parent.parent)  # as on a host
        answered = out.stdout.strip() == "True"
        server.shutdown()
    try:
        reached.append(proxy.accept())
    except socket.timeout:
        pass
    proxy.close()
    assert answered and reached == []


def test_an_orphan_is_a_purged_start_with_no_start_registered_since():
    purged = ["nodeA/1/200", "nodeA/2/200", "nodeB/1/200", "nodeB/1/200"]
    registered = {0: "nodeA/1/300", 1: "nodeA/2/100", 5: "nodeC/1/50"}  # nodeA/1 came back
    assert probe.orphans(purged, registered) == ["nodeA/2/200", "nodeB/1/200"]
    assert probe.orphans(purged, registered, known={"nodeB/1/200"}) == ["nodeA/2/200"]


def test_the_wait_ends_as_soon_as_an_orphan_of_an_expected_host_is_found(controller):
    client, _ = controller
    registry = probe.Registry(lambda: client)
    started = time.monotonic()
    counts, found = probe.wait_for_engines(registry, {"nodeA": 3}, started + 30, lambda line: None,
                                           lambda uuids: ["nodeA/3/1"])
    assert (counts, found) == (LABELS, ["nodeA/3/1"]) and time.monotonic() - started < 10
    counts, found = probe.wait_for_engines(registry, {"nodeA": 3}, time.monotonic() + 1,
                                           lambda line: None, lambda uuids: ["other/1/1"])
    assert found == ["other/1/1"]  # reported, but waited for no longer than the deadline


def test_a_client_that_missed_a_registration_is_replaced(controller, monkeypatch):
    registry = probe.Registry(lambda: ipp.Client(profile="probe", timeout=20))
    try:
        first = registry.client
        missed = first.ids[0]  # as a registration between connection reply and subscription
        first._ids.remove(missed)
        del first._engines[missed]
        assert probe.count_by_label(registry.uuids()) != LABELS  # within RESYNC s: as it was
        monkeypatch.setattr(probe, "RESYNC", 0)
        assert probe.count_by_label(registry.uuids()) == LABELS
        assert registry.client is not first
    finally:
        registry.close()


def test_a_controller_that_dies_while_waited_for_ends_the_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    monkeypatch.setattr(probe, "RESYNC", 0)
    cluster = ipp.Cluster(profile="dying", cluster_id="", n=0)
    cluster.start_controller_sync()
    registry = probe.Registry(lambda: ipp.Client(profile="dying", timeout=2))
    cluster.stop_controller_sync()
    started = time.monotonic()
    with pytest.raises((TimeoutError, OSError)):  # not a wait of 600 s, nor a hang
        probe.wait_for_engines(registry, {"nodeA": 1}, started + 600, lambda line: None)
    assert time.monotonic() - started < 60


def test_an_engine_purged_before_the_nanny_restarted_the_controller_is_an_orphan(controller, tmp_path):
    """The nanny's ``=== nanny ...: restart:`` lines are no start of the session: what the
    hub purged before its restart is still unknown to it (a restart with --restore keeps
    its registrations, not those it purged)."""
    (tmp_path / "t-controller.log").write_text(NANNY_RESTARTED_LOG)
    report = probe.probe({"name": "t", "profile": "probe"}, str(tmp_path))
    assert report["controller"] is True and report["orphans"] == ["nodeC/1/5"]
