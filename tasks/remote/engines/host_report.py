"""
The host's facts, sent to the master for the dashboard: the supervisor's state file
(``NAME-engines.json``: the host's sample and each engine's pid, state and memory), every
`SEND` s, to the controller's host inbox (``host_inbox.py``, in the controller).

The inbox listens on the controller's address, at the port named `PORT_KEY` in the engine
connection file, which every engine host has already: the report goes where the engines
go, with the engines' security (each message signed with the cluster's key, over Curve
with ``ENCRYPT=yes``), and needs no shared home and no connection of fab's. A new
connection file (a new controller) is read when it changes. Nothing is asked of an engine.

It is no part of the supervisor's loop: the supervisor forks engines, so it must hold no
ZeroMQ context and no thread. Where the host nanny runs (``host_nanny.py``: engines forked),
its loop sends the reports (`report`); else a process of its own (`Reporter` starts it,
for the supervisor) does, and ends when its parent, the supervisor SUPERVISOR (a pid), does::

    python RUN_DIR/ipp_remote engines.host_report STATE_FILE ENGINE_FILE LABEL SUPERVISOR

Each report says how old the sample is by the host's clock (``age``): a supervisor that
hangs shows as an old sample, however often its last one is sent.
"""

import json
import os
import sys
import time

from ..shared.host_reports import MSG_TYPE, PORT_KEY

SEND = 3.0  # seconds between two reports


def engine_file(argv):
    """The engine connection file of the profile in ipengine's *argv* (``--profile=``)."""
    profile = next((a.split("=", 1)[1] for a in argv if a.startswith("--profile=")), "default")
    ipython_dir = os.environ.get("IPYTHONDIR") or os.path.expanduser("~/.ipython")
    return os.path.join(ipython_dir, f"profile_{profile}", "security", "ipcontroller-engine.json")


class Reporter:
    """The reporting process of the supervisor: `keep` starts it (again, `SEND` s after it
    ended); the supervisor reaps it and says so with `ended`."""

    def __init__(self, state_file, engine_file, label):
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.argv = [sys.executable, package, "engines.host_report", state_file, engine_file,
                     label, str(os.getpid())]
        self.pid, self.due = None, 0.0

    def keep(self):
        if self.pid is None and time.monotonic() >= self.due:
            try:
                self.pid = os.posix_spawn(sys.executable, self.argv, dict(os.environ))
            except OSError:  # no process left to the user: the next try is later
                self.due = time.monotonic() + SEND

    def ended(self):
        self.pid, self.due = None, time.monotonic() + SEND


class Sender:
    """One PUSH socket to the inbox of the controller named in *path* (see the module)."""

    def __init__(self, path):
        import zmq  # here, not at the top: the supervisor imports this module
        from jupyter_client.session import Session

        self.zmq, self.path, self.seen, self.socket, self.session = zmq, path, None, None, None
        self.Session = Session

    def connect(self):
        """Connect (again) when the connection file changed; False while there is none."""
        try:
            stat = os.stat(self.path)
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        if seen != self.seen:
            self.close()
            self.seen = seen
            try:
                with open(self.path) as file:
                    info = json.load(file)
            except (OSError, ValueError):
                self.seen = None  # being written: read again next time
                return False
            if not info.get(PORT_KEY):
                return False  # a controller without an inbox
            self.session = self.Session(key=info["key"].encode(),
                                        signature_scheme=info["signature_scheme"],
                                        packer=info.get("pack", "json"),
                                        unpacker=info.get("unpack", "json"))
            self.socket = self.zmq.Context.instance().socket(self.zmq.PUSH)
            self.socket.linger, self.socket.sndhwm, self.socket.immediate = 0, 2, 1
            if info.get("curve_serverkey"):
                self.socket.curve_serverkey = info["curve_serverkey"].encode()
                self.socket.curve_publickey, self.socket.curve_secretkey = self.zmq.curve_keypair()
            self.socket.connect(f"{info['interface']}:{info[PORT_KEY]}")
        return self.socket is not None

    def send(self, content):
        """Send *content*, or drop it when the inbox cannot take it now (never wait)."""
        frames = self.session.serialize(self.session.msg(MSG_TYPE, content))
        try:
            self.socket.send_multipart(frames, self.zmq.NOBLOCK)
        except self.zmq.Again:
            pass

    def close(self):
        if self.socket is not None:
            self.socket.close()
        self.socket = None


def report(sender, state_file, label):
    """Send the state file's facts with *sender* (a `Sender`), if it is there."""
    try:
        with open(state_file) as file:
            state = json.load(file)
    except (OSError, ValueError):  # not written yet, or being replaced
        state = None
    if state and sender.connect():
        sender.send({"label": label, "host": state.get("host") or {},
                     "engines": state.get("engines") or {},
                     "age": max(0.0, time.time() - state.get("time", time.time()))})


def main(argv):
    state_file, path, label, parent = argv[1:5]
    sender = Sender(path)
    while os.getppid() == int(parent):  # else the supervisor ended, before or since this start
        report(sender, state_file, label)
        time.sleep(SEND)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
