"""
What the engines say of their tasks, heard by the dashboard (``dashboard/extension.py``) on
the controller's IOPub relay: each engine sends ``status`` ``busy`` when it takes a
request and ``idle`` when it is done with it, and the ``error`` of one that raised, each
under the request's msg_id, on a topic ``engine.ID.KIND`` (ipykernel's protocol and
ipyparallel's topics). `Listener` takes those of tasks into the dashboard's stream.

A message is taken only with a valid signature of the cluster's key. With
``ENCRYPT=yes`` ipyparallel leaves messages unsigned (its key is empty) and Curve is
what keeps others out: only a holder of the controller's public key (the connection
files, 0600) connects. Its engine is the one its signed part names (ipyparallel's
metadata ``engine``, or the header's ``session``: both the engine's uuid), as the hub last
listed it (``Watcher.engine_ids``), never the topic's number: the topic frame is not
signed. What the listener holds is bounded: `QUEUED` messages unread, `UNPLACED` waiting
for the hub to list their engine.
"""

import collections
import hmac
import json
import os
import threading
import time

import zmq
from jupyter_client.session import Session

from .stream import seconds

UNREAD = 5.0  # seconds after which the listener reads the state itself, no page open
BATCH = 1000  # messages taken under one lock at most
QUEUED = 10_000  # messages held unread at most (ZeroMQ's receive high-water mark)
UNPLACED = 1000  # messages of engines the hub did not list yet, held until its next listing
TASK_REQUESTS = ("apply_request", "execute_request")  # what a task is, to an engine
#: A status's content is ``{"execution_state": ...}`` alone: as JSON packers write it, it is
#: known without parsing it.
BUSY = {json.dumps({"execution_state": "busy"}, separators=sep).encode() for sep in ((",", ":"), None)}
IDLE = {json.dumps({"execution_state": "idle"}, separators=sep).encode() for sep in ((",", ":"), None)}


def connection(profile_dir):
    """The client connection file's content, and a `Session` with its key."""
    with open(os.path.join(profile_dir, "security", "ipcontroller-client.json")) as file:
        info = json.load(file)
    return info, Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"],
                         packer=info.get("pack", "json"), unpacker=info.get("unpack", "json"))


def socket_to(info, kind, channel):
    """A socket of *kind* connected to the controller's *channel* (Curve where it is on)."""
    socket = zmq.Context.instance().socket(kind)
    socket.linger = 0
    if info.get("curve_serverkey"):
        socket.curve_serverkey = info["curve_serverkey"].encode()
        socket.curve_publickey, socket.curve_secretkey = zmq.curve_keypair()
    socket.connect(f"{info['interface']}:{info[channel]}")
    return socket


class Listener(threading.Thread):
    """The engines' word on the IOPub relay, into *watcher*'s stream, in a thread of its
    own. It connects anew when the connection file changes (a new controller, whose
    tasks are not the last one's). With no page open, it reads the state every `UNREAD`
    s itself: the history (completed counts, failures, engines) must see what the hub
    forgets at a restart."""

    def __init__(self, watcher):
        super().__init__(name="ipp-dashboard-listener", daemon=True)
        self.watcher, self.socket, self.session, self.seen = watcher, None, None, None
        self.waiting = collections.deque(maxlen=UNPLACED)  # (message, when), see `retake`

    def run(self):
        while True:
            try:
                if time.monotonic() - self.watcher.cached_at > UNREAD:
                    self.watcher.state()
                self.connect()
                if self.socket is None or not self.socket.poll(1000):
                    time.sleep(0 if self.socket else 1)
                    continue
                messages = []
                while len(messages) < BATCH:
                    try:
                        messages.append(self.socket.recv_multipart(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                when = time.time()
                with self.watcher.lock:
                    for message in messages:
                        self.take_safely(message, when)
            except Exception as error:  # the page says the rest; the listener goes on
                print(f"ipp_dashboard: {error!r}", flush=True)
                time.sleep(1)

    def connect(self):
        """Connect to the relay of the controller whose connection file is there now."""
        path = os.path.join(self.watcher.profile_dir, "security", "ipcontroller-client.json")
        try:
            stat = os.stat(path)
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        if seen == self.seen:
            return
        if self.socket is not None:
            self.socket.close()
            with self.watcher.lock:
                self.watcher.stream.forget_running()
        self.socket = None
        if seen:
            info, self.session = connection(self.watcher.profile_dir)  # half written: raises
            self.socket = socket_to(info, zmq.SUB, "iopub")
            self.socket.rcvhwm = QUEUED  # a flood beyond it is dropped by ZeroMQ
            self.socket.subscribe(b"engine.")
        self.seen = seen  # only now: a file read half written is read again

    def take_safely(self, message, when, wait=True):
        try:
            self.take(message, when, wait)
        except Exception as error:  # one bad message, and no other, is skipped
            print(f"ipp_dashboard: a message skipped: {type(error).__name__}", flush=True)

    def retake(self):
        """Take what waited for its engine to be listed by the hub (the watcher's read, under
        its lock, calls it once it listed them): what is still not listed is dropped."""
        waiting, self.waiting = self.waiting, collections.deque(maxlen=UNPLACED)
        for message, when in waiting:
            self.take_safely(message, when, wait=False)

    def take(self, message, when, wait=True):
        """One IOPub message, taken at *when*: a task's ``busy``, ``error`` or ``idle``; one of
        an engine the hub has not listed yet waits for its next listing (*wait*). The topic
        only sorts out early what is none of these: the rest is read in the signed part."""
        topic = message[0].split(b".")
        if len(topic) != 3 or topic[2] not in (b"status", b"error"):
            return
        _, frames = self.session.feed_identities(message)
        if len(frames) < 5 or (self.session.auth and not hmac.compare_digest(
                frames[0], self.session.sign(frames[1:5]))):
            return
        parent = self.session.unpack(frames[2])
        if parent.get("msg_type") not in TASK_REQUESTS:
            return
        header, metadata = self.session.unpack(frames[1]), self.session.unpack(frames[3])
        engine = self.watcher.engine_ids.get(metadata.get("engine") or header.get("session"))
        if engine is None:
            if wait:
                self.waiting.append((message, when))
            return
        msg_id, task = parent.get("msg_id"), self.watcher.stream
        if header.get("msg_type") == "error":
            return task.failed(engine, msg_id, self.session.unpack(frames[4]), when)
        if header.get("msg_type") != "status":
            return
        state = "busy" if frames[4] in BUSY else "idle" if frames[4] in IDLE else \
            self.session.unpack(frames[4]).get("execution_state")
        if state in ("busy", "idle"):
            (task.began if state == "busy" else task.ended)(engine, msg_id, when, stamp_of(header.get("date")))


def stamp_of(date):
    """Seconds since the epoch of a header's ``date`` (its engine's clock), or None."""
    try:
        return seconds(date)
    except (TypeError, ValueError):
        return None
