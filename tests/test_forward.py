"""
`tasks.ssh.forward.Forwards` without SSH: a fake transport whose channels are TCP
connections to a local echo server, so that what a forward does with its listener and
its connections is tested alone, in a fraction of a second.
"""

import errno
import os
import socket
import threading

import pytest

from tasks.ssh import forward


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


def round_trip(port, data=b"hello"):
    """Send *data* through 127.0.0.1:*port*; what comes back (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
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


def test_a_connection_the_guard_refuses_opens_no_channel_and_is_named(echo):
    """The guard is asked before each connection's channel: refused, nothing of it reaches
    the remote port (cluster.tunnel: Jupyter's port held by another user); let through, the
    forward works as before."""
    opened, answers, warned = [], ["", "127.0.0.1:8888 is held by mallory"], []

    class Counting(Transport):
        def open_channel(self, *args, **kwargs):
            opened.append(args[1])
            return super().open_channel(*args, **kwargs)
    port = free_port()
    with forward.Forwards(Counting(), "127.0.0.1", {port: echo}, timeout=5, warn=warned.append,
                          guard=lambda remote: answers.pop(0)) as forwards:
        assert round_trip(port) == b"hello"
        try:
            back = round_trip(port, b"secret token")
        except OSError:  # reset, closed with the bytes unread: nothing came back either
            back = b""
        assert back == b""
        assert forwards.alive()
    assert opened == [("127.0.0.1", echo)]
    assert warned == [f"a connection to 127.0.0.1:{port} was refused: 127.0.0.1:8888 is held by mallory"]
