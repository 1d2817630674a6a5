"""
`tasks.ssh.forward.Forwards` without SSH: a fake transport whose channels are TCP
connections to a local echo server, so that what a forward does with its listener and
its connections is tested alone, in a fraction of a second; and one whose exec channels
run the relay of ``cluster.tunnel`` (``loopback.py relay``) here, as the master runs it.
"""

import errno
import os
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

from tasks.inventory.folder import Settings
from tasks import commands
from tasks.ssh import forward
from tests.spy import spy
from tests.waiting import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a listener as nobody: needs root")


class Channel:
    """What `Forwards` uses of a paramiko channel, over a plain socket."""

    def __init__(self, sock):
        self.sock = sock
        self.recv, self.sendall, self.close = sock.recv, sock.sendall, sock.close

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)


class Transport:
    """What `Forwards` uses of a paramiko transport: each channel, a connection to 127.0.0.1."""

    def is_active(self):
        return True

    def open_channel(self, kind, destination, origin, timeout):
        return Channel(socket.create_connection(("127.0.0.1", destination[1]), timeout=timeout))


@pytest.fixture
def echo():
    """The port of a local server that sends back what it receives, until its client ends."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def round_trip(port, data=b"hello", timeout=5):
    """Send *data* through 127.0.0.1:*port*; what comes back (*timeout* seconds at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        back = b""
        while chunk := client.recv(4096):
            back += chunk
        return back


def test_a_failed_accept_is_named_and_the_forward_goes_on_until_closed(echo, monkeypatch):
    """EMFILE (or any error of accept) is passing: warned once, then later connections are
    still forwarded; only `Forwards.close` ends the accept loop."""
    failures = [OSError(errno.EMFILE, os.strerror(errno.EMFILE))] * 2  # twice: warned once

    class Flaky(socket.socket):
        def accept(self):
            if failures:
                raise failures.pop()
            return super().accept()
    create_server = socket.create_server
    monkeypatch.setattr(forward.socket, "create_server",
                        lambda *args, **kwargs: Flaky(fileno=create_server(*args, **kwargs).detach()))
    port, warned = free_port(), []
    forwards = forward.Forwards(Transport(), "127.0.0.1", {port: echo}, timeout=5, warn=warned.append)
    loop = next(t for t in threading.enumerate() if t.name == f"forward-{port}")
    try:
        assert round_trip(port) == b"hello"
        assert round_trip(port, b"again") == b"again"
    finally:
        forwards.close()
    assert warned == [f"127.0.0.1:{port} cannot accept a connection: Too many open files "
                      "(EMFILE); trying again every 0.1 s"]
    loop.join(timeout=5)
    assert not loop.is_alive()


class Session:
    """What `Forwards` uses of a paramiko exec channel, over a local process: the command
    runs here, as the master's login shell would run it."""

    def __init__(self, environ, transport=None):
        self.environ, self.process, self.transport, self.closed = environ, None, transport, False

    def get_transport(self):
        return self.transport

    def settimeout(self, timeout):
        pass

    def exec_command(self, command):
        self.process = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=self.environ, bufsize=0)

    def sendall(self, data):
        self.process.stdin.write(data)

    def recv(self, size):
        return os.read(self.process.stdout.fileno(), size)

    def recv_stderr(self, size):
        return os.read(self.process.stderr.fileno(), size)

    def recv_exit_status(self):
        return self.process.wait()

    def shutdown_write(self):
        self.process.stdin.close()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdin.close()  # its relay's too, as a channel's end closes it
        if self.transport is not None and not self.closed:
            self.transport.sessions -= 1
        self.closed = True


class Master(Transport):
    """A transport whose exec channels run on this machine (as root: needs root for nobody);
    *opening*, if given, is called as each channel is asked for, before it runs."""

    def __init__(self, home):
        self.environ, self.opening = dict(os.environ, HOME=str(home), TMPDIR=str(home)), None
        self.sessions = self.most = 0  # sessions open now, and at most

    def open_session(self, timeout):
        if self.opening:
            self.opening()
        self.sessions += 1
        self.most = max(self.most, self.sessions)
        return Session(self.environ, self)

    def open_channel(self, kind, destination, origin, timeout):
        if self.opening:
            self.opening()
        return super().open_channel(kind, destination, origin, timeout)


@needs_root
def test_a_listener_that_takes_the_port_after_every_check_gets_not_a_byte_and_is_named(tmp_path):
    """The master's port is this user's when the forward starts (its check passes) and when a
    first connection comes; then, as the master is asked for the next connection's channel
    (after whatever was checked before it, before the master connects), that listener ends
    and another user's takes the port: the browser's bytes (its token) reach nobody, the
    connection is refused, and that user named. Only a check of the very connection the
    bytes go into (the relay's) tells; a check made before it cannot."""
    port, local, warned = free_port(), free_port(), []
    settings = Settings(cluster_env=str(Path(sys.executable).parent.parent), cluster_name="t")
    program = commands.script(settings, commands.relay(port))
    own = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=lambda: [echo_one(own.accept()[0]) for _ in range(2)], daemon=True).start()
    master = Master(tmp_path)
    with ExitStack() as taken, forward.Forwards(master, "127.0.0.1", {local: port}, timeout=30,
                                                warn=warned.append, relay=lambda remote: program,
                                                name="head") as forwards:
        forwards.check([port])
        assert round_trip(local) == b"hello"
        others = []

        def swap():  # once: this user's listener ends, nobody's takes the port
            if not others:
                own.close()
                others.append(taken.enter_context(spy("nobody", port, tmp_path)))
        master.opening = swap
        try:
            back = round_trip(local, b"Authorization: token secret", timeout=30)
        except OSError:  # reset, closed with the bytes unread: nothing came back either
            back = b""
        assert others, "the port did not change hands"
        assert back == b"" and others[0].heard() == b""
        assert forwards.alive()
    assert warned == [f"a connection to 127.0.0.1:{local} was refused: head: 127.0.0.1:{port} is held by "
                      "nobody, not by this user's Jupyter"]


def echo_one(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def test_relays_beyond_what_one_ssh_connection_allows_go_on_more_connections(tmp_path):
    """sshd allows 10 sessions a connection (MaxSessions), and each relay is one: a browser's
    20 connections to Jupyter at once (HTTP, a websocket per kernel) are all served, on as
    many SSH connections as `forward.SESSIONS` a connection needs, none holding more."""
    port, local = free_port(), free_port()
    settings = Settings(cluster_env=str(Path(sys.executable).parent.parent), cluster_name="t")
    program = commands.script(settings, commands.relay(port))
    jupyter = socket.create_server(("127.0.0.1", port), backlog=64)
    threading.Thread(target=lambda: [threading.Thread(target=echo_one, args=(jupyter.accept()[0],),
                                                      daemon=True).start() for _ in range(40)],
                     daemon=True).start()
    first, more = Master(tmp_path), []

    def another():
        more.append(Master(tmp_path))
        return more[-1]
    with forward.Forwards(first, "127.0.0.1", {local: port}, timeout=30, warn=pytest.fail,
                          relay=lambda remote: program, more=another):
        browser = [socket.create_connection(("127.0.0.1", local), timeout=30) for _ in range(20)]
        for number, conn in enumerate(browser):  # each open at once, and each answered
            conn.sendall(b"ping %d" % number)
            assert conn.recv(64) == b"ping %d" % number
        assert len(more) == 2 and max(t.most for t in [first, *more]) == forward.SESSIONS
        for conn in browser:
            conn.close()
        wait_until(lambda: all(t.sessions == 0 for t in [first, *more]), 30, "every relay to end")
