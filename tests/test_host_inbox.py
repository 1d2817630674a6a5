"""
The controller's host inbox (``tasks/remote/host_inbox.py``) against what a peer may send:
forged frames from one without the key leave the controller's log a few lines (never
their bytes), and a report of the wrong shape from a key holder is refused, as the
dashboard's reader refuses such a file (``dashboard_hosts.py``). The first test runs the
real controller (``controller.py``, as the nanny runs it); the others the inbox alone.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from jupyter_client.session import Session
from tornado.ioloop import IOLoop

from tasks.remote import host_inbox
from tasks.remote.refusals import Throttle
from tasks.remote.host_report import MSG_TYPE, PORT_KEY
from tasks.remote.ipp_dashboard import Watcher
from tests.waiting import wait_until

REMOTE = Path(host_inbox.__file__).parent
MARK = b"FORGED-FRAME-BYTES"


@pytest.fixture
def controller(tmp_path):
    """controller.py on 127.0.0.1, its output in ``log``; the engine connection file's content."""
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    log = tmp_path / "c-controller.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(REMOTE / "controller.py"), str(tmp_path),
                                    "--profile=inbox", "--ip=127.0.0.1"], stdout=out, stderr=out, env=env,
                                   start_new_session=True)  # its schedulers in its group
    engine_file = tmp_path / "ipython" / "profile_inbox" / "security" / "ipcontroller-engine.json"
    try:
        info = wait_until(lambda: json.loads(engine_file.read_text()).get(PORT_KEY) and
                          json.loads(engine_file.read_text()), 60, "the controller's engine file")
        wait_until(lambda: b"task::using" in log.read_bytes(), 60, "the controller's start")
        yield info, log, tmp_path
    finally:  # the controller and the schedulers it forked: nothing of it is left
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_forged_frames_leave_the_log_a_few_lines_without_their_bytes(controller):
    info, log, run = controller
    context = zmq.Context()
    peer = context.socket(zmq.PUSH)
    peer.linger, peer.sndtimeo = 0, 30_000
    peer.connect(f"{info['interface']}:{info[PORT_KEY]}")
    forger = Session(key=b"a guess", signature_scheme=info["signature_scheme"])
    before = log.stat().st_size
    for number in range(10):  # each with a signature frame of almost 1 MiB
        frames = forger.serialize(forger.msg(MSG_TYPE, {"label": f"forged{number}"}))
        frames[1] = MARK * ((1 << 20) // len(MARK) - 1)
        peer.send_multipart(frames)
    genuine = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
    peer.send_multipart(genuine.serialize(genuine.msg(MSG_TYPE, {"label": "node01", "host": {}, "engines": {}})))
    wait_until(lambda: (run / "hosts" / "node01.json").exists(), 60, "the genuine report, after the forged")
    added = log.read_bytes()[before:]
    context.destroy(linger=0)
    assert MARK not in added and b"Invalid Signature" not in added
    assert len(added) < 1000 and added.count(b"refused") == 1, added[:2000]


class StandIn:
    """What the inbox uses of the controller, with a real socket and loop."""

    def __init__(self, key=b"the-key"):
        self.context, self.loop = zmq.Context(), IOLoop()
        self.log, self.session = logging.getLogger("test"), Session(key=key, signature_scheme="hmac-sha256")

    def engine_url(self, channel):
        return "tcp://127.0.0.1"

    def bind(self, socket, url):
        socket.bind_to_random_port(url)


def test_the_inbox_socket_holds_few_messages_of_at_most_one_mib():
    stand_in = StandIn()
    inbox = host_inbox.Inbox(stand_in, "/nonexistent-not-written")
    socket = inbox.stream.socket
    assert socket.rcvhwm <= 16 and socket.maxmsgsize == host_inbox.LARGEST == 1 << 20
    inbox.stream.close()
    stand_in.context.destroy(linger=0)


BAD_SHAPES = [
    {"label": "node01", "host": [1, 2], "engines": {}},
    {"label": "node01", "host": {}, "engines": [{"rss": 5}]},
    {"label": "node01", "host": {}, "engines": {"1": [5]}},
    {"label": "node01", "host": {}, "engines": {"1": {"rss": "5 MiB"}}},
    {"label": "node01", "host": {}, "engines": {}, "age": "old"},
    {"label": ["node01"], "host": {}, "engines": {}},
]


def test_a_key_holder_s_report_of_the_wrong_shape_is_refused_and_the_inbox_goes_on(tmp_path, caplog):
    stand_in = StandIn()
    inbox = host_inbox.Inbox(stand_in, str(tmp_path))

    def send(content):  # signed, whatever its shape
        session = stand_in.session
        frames = [f if isinstance(f, bytes) else f.encode()
                  for f in session.serialize(session.msg(MSG_TYPE, {}))]
        frames[5] = session.pack(content)
        frames[1] = session.sign(frames[2:6])
        inbox.take(frames)
    for content in [*BAD_SHAPES, ["node01"], "node01"]:
        send(content)
    assert list(tmp_path.iterdir()) == []
    send({"label": "node01", "host": {"cores": 2}, "engines": {"1": {"rss": 5, "limit": None}}, "age": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["node01.json"]
    assert caplog.text.count("refused") == 1  # the first at once, the others counted for later
    inbox.stream.close()
    stand_in.context.destroy(linger=0)


def test_the_dashboard_answers_with_a_sample_file_of_the_wrong_shape(tmp_path):
    for folder in ("dashboard", "hosts", "security"):
        (tmp_path / folder).mkdir()
    bad_samples = [dict(bad, sampled=1.0) for bad in BAD_SHAPES[:4]] + [
        {"sampled": "x", "host": {}, "engines": {}}, {"sampled": 1.0, "engines": {}}, [1.0, {}, {}]]
    for number, bad in enumerate(bad_samples):
        (tmp_path / "dashboard" / f"node{number}.json").write_text(json.dumps({"expected": 1}))
        (tmp_path / "hosts" / f"node{number}.json").write_text(json.dumps(bad))
    state = Watcher(str(tmp_path), str(tmp_path), "c").read()  # no controller: it says so
    assert state["error"] and len(state["hosts"]) == len(bad_samples)
    assert all(row["resources"] is None and row["sample_age"] is None for row in state["hosts"])


def test_frames_ipyparallel_logs_whole_are_cut_short_in_the_log(controller):
    """The hub logs a monitor message without a topic with its bytes (``%r``): a peer
    without the key that reaches the engines' IOPub port can send them."""
    info, log, _ = controller
    context = zmq.Context()
    peer = context.socket(zmq.PUB)
    peer.linger = 0
    peer.connect(f"{info['interface']}:{info['iopub']}")
    before = log.stat().st_size
    frame = MARK * ((1 << 20) // len(MARK) - 1)

    def lines():  # a PUB drops what it sends before it is connected: sent until 10 are said
        peer.send_multipart([frame])
        return log.read_bytes()[before:].count(b"Monitor message without topic") >= 10
    wait_until(lines, 60, "10 lines of the hub about the frames")
    context.destroy(linger=0)
    added = log.read_bytes()[before:]
    said = [line for line in added.splitlines() if b"Monitor message without topic" in line]
    assert max(map(len, said)) < 2000, f"a line of {max(map(len, said))} bytes"


def test_errors_of_one_kind_are_logged_ten_a_period_then_counted(caplog):
    log = logging.getLogger("test-throttle")
    log.addFilter(Throttle(burst=10, period=0.2))
    for number in range(100):
        log.error("Monitor message without topic: %r", b"x%d" % number)
        log.warning("registration::purging stalled registration %d:nodeA/1/5", number)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 10 and len(caplog.records) == 110  # the warnings all logged

    def told():  # the first error let through in the next period
        log.error("Monitor message without topic: %r", b"later")
        last = caplog.records[-1]
        return last.getMessage() if last.levelno == logging.ERROR and "later" in last.getMessage() else None
    said = wait_until(told, 10, "the next period")  # those tried before it counted too
    dropped = re.fullmatch(r"Monitor message without topic: b'later' \(([0-9]+) more like it not logged\)", said)
    assert dropped and int(dropped[1]) >= 90


def test_a_flood_without_the_key_on_the_task_and_heartbeat_ports_leaves_the_log_a_few_lines(controller):
    """Unsigned or unreadable frames to the clients' task port, the engines' task port and
    the heartbeat port: ipyparallel logs each (an error with its bytes and a traceback, or
    a warning per pong) in its scheduler's and heart monitor's own processes."""
    info, log, run = controller
    client_file = run / "ipython" / "profile_inbox" / "security" / "ipcontroller-client.json"
    client_task = json.loads(client_file.read_text())["task"]
    context = zmq.Context()
    peers = {}
    for name, port in (("submission", client_task), ("result", info["task"]), ("pong", info["hb_pong"])):
        peers[name] = context.socket(zmq.DEALER)
        peers[name].linger, peers[name].sndtimeo = 0, 30_000
        peers[name].connect(f"{info['interface']}:{port}")
    forger = Session(key=b"a guess", signature_scheme=info["signature_scheme"])
    before = log.stat().st_size

    def flood(count):
        for number in range(count):
            unsigned = [f if isinstance(f, bytes) else f.encode()
                        for f in forger.serialize(forger.msg("apply_request", {}))]
            peers["submission"].send_multipart(unsigned if number % 2 else [b"x" * 100])
            peers["result"].send_multipart([b"client", *unsigned] if number % 2 else [b"y" * 100])
            peers["pong"].send_multipart([b"%d" % number])
        added = log.read_bytes()[before:]
        return (b"Invaid task msg" in added or b"tasks from clients refused" in added) and (
            b"Invalid result" in added or b"results from engines refused" in added) and (
            added.count(b"got bad heartbeat") >= 10)
    flood(500)
    wait_until(lambda: flood(10), 60, "the scheduler's and the heart monitor's lines about the flood")
    added = log.read_bytes()[before:]
    context.destroy(linger=0)
    assert len(added) < 8000, f"{len(added)} bytes: {added[:3000]!r}"


def test_warnings_made_of_a_peer_s_values_are_one_kind_and_the_purge_line_is_never_held(caplog):
    log = logging.getLogger("test-throttle-kinds")
    log.addFilter(Throttle(burst=10, period=60))
    for number in range(300):  # f-strings: each text differs from its first value on
        log.error(f"task::Invaid task msg: {[b'x' * number]!r}")
        log.warning(f"heartbeat::got bad heartbeat (possibly old?): {number}")
        log.warning(f"registration::purging stalled registration {number}:nodeA/1/5")
    texts = [r.getMessage() for r in caplog.records]
    assert sum(t.startswith("task::Invaid") for t in texts) == 10
    assert sum(t.startswith("heartbeat::got bad") for t in texts) == 10
    assert sum(t.startswith("registration::purging") for t in texts) == 300
