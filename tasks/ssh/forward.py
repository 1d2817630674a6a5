"""
Local ports forwarded through an open SSH connection (``cluster.connect``, ``cluster.tunnel``).

Fabric's ``forward_local`` is not used: its tunnels wait on ``channel.fileno()``,
a pipe that paramiko writes from its transport thread without a lock, so a
connection closed while data arrives (paramiko issues #1700 and #2271) raises
EBADF in the transport thread and ends the whole SSH connection, or writes into
another file that took the closed pipe's number. Measured here: with three busy
loops, 3 ``cluster.connect`` clients in 8 lost every forward that way. Its
listener also accepts one connection at a time, opens the channel in the accept
loop and keeps a failure to itself until Ctrl-C.

A `Forwards` listens on every local port before it returns, serves each
connection in a thread of its own with blocking ``recv`` on the channel (no pipe
is ever made), says through *warn* when one connection cannot be served, and tells
the holding task when the SSH connection itself has ended. ``cluster.tunnel``'s, to
Jupyter, relay each connection through an exec channel (``loopback.py relay`` on the
master) instead of sshd's direct-tcpip one, which connects to whoever listens there.
"""

import errno
import socket
import threading

from ..commands.script import REMOTE_SHELL

#: Bytes read at a time from either side of a forward.
CHUNK = 65536
#: Seconds between tries of a listener whose accept failed (out of file descriptors...).
RETRY = 0.1
#: The line with which a relay says that its connection is this user's; bytes that may
#: come before it (what a login shell's startup files print).
RELAYING, BEFORE_RELAYING = b"relay=yes", 65536
#: Relays open at once on one SSH connection: each is a session, and sshd allows 10 a
#: connection (``MaxSessions``), while a browser holds more connections than that to
#: Jupyter (six of HTTP, a websocket per kernel): the others go on more connections.
SESSIONS = 8


class ForwardError(Exception):
    """A forward could not be set up or stopped working; the message says which and why."""


class Forwards:
    """
    Forward ``127.0.0.1:LOCAL`` to ``(remote_host, REMOTE)`` through *transport*, for each
    ``{LOCAL: REMOTE}`` in *ports*, until `close`.

    :param transport: the open ``paramiko.Transport`` of the master's Fabric connection.
    :param timeout: seconds to wait for the master to open each channel.
    :param warn: called with a line for each connection that could not be served, and
        when a listener cannot accept one (it goes on trying: see `_accept`).
    :param relay: if given, a function of a remote port that gives the program (for
        ``REMOTE_SHELL``'s stdin) that relays one connection to the master's 127.0.0.1 there:
        each connection runs it in an exec channel of its own, and is forwarded only once it
        says `RELAYING` (``tasks.commands.master.relay``: the connection it made is this
        user's). ``cluster.tunnel``'s, to Jupyter: the browser sends the token there. Else
        each connection is a direct-tcpip channel to ``(remote_host, REMOTE)``.
    :param name: the master's name, in what a relay that refused says.
    :param more: with *relay*, a function that opens one more SSH connection to the master
        and gives its transport, for the relays beyond `SESSIONS` on each.
    """

    def __init__(self, transport, remote_host, ports, timeout, warn, relay=None, name="the master",
                 more=None):
        self.transport, self.remote_host, self.timeout = transport, remote_host, timeout
        self.warn, self.problem, self.relay, self.name = warn, None, relay, name
        self.more, self._relays, self._lock = more, {transport: 0}, threading.Lock()
        self._closing = threading.Event()
        self._listeners = []
        try:
            for local, remote in ports.items():
                listener = socket.create_server(("127.0.0.1", local), backlog=128)
                self._listeners.append(listener)
                threading.Thread(target=self._accept, args=(listener, local, remote), daemon=True,
                                 name=f"forward-{local}").start()
        except OSError as error:
            self.close()
            raise ForwardError(f"cannot listen on 127.0.0.1:{local}: {error.strerror}") from None

    def check(self, remote_ports):
        """Open (and close) a channel to each of *remote_ports*: proves the master reaches
        them (a relay, that it runs and the port is this user's), not only that the local
        port listens. Raises `ForwardError`."""
        for port in remote_ports:
            channel = self._open(port, ("127.0.0.1", 0))[0]
            channel.close()
            self._release(channel)

    def alive(self):
        """True while the SSH connection lives (`problem` says why not)."""
        if self.problem is None and not self.transport.is_active():
            self.problem = "the SSH connection to the master ended"
        return self.problem is None

    def close(self):
        """Stop listening (the connections being served end with the process or the SSH one)."""
        self._closing.set()
        for listener in self._listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(), which close() does not
            except OSError:
                pass
            listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self, port, origin):
        """``(channel, bytes it brought already)`` to *port* on the master."""
        if self.relay:
            return self._open_relay(port)
        try:
            channel = self.transport.open_channel(
                "direct-tcpip", (self.remote_host, port), origin, timeout=self.timeout)
        except Exception as error:  # paramiko's ChannelException, SSHException, EOFError...
            raise ForwardError(f"the master cannot open {self.remote_host}:{port}: "
                               f"{error or type(error).__name__}") from None
        if channel is None:  # paramiko's answer when the transport closed meanwhile
            raise ForwardError(f"the master cannot open {self.remote_host}:{port}: "
                               "the SSH connection ended")
        return channel, b""

    def _open_relay(self, port):
        """An exec channel running the relay to *port*, once it said `RELAYING`, and what
        came after that line; refused, `ForwardError` with the relay's reason."""
        channel = None
        try:
            channel = self._session()
            channel.settimeout(self.timeout)  # each wait for the relay, not the relaying
            channel.exec_command(REMOTE_SHELL)
            channel.sendall(self.relay(port).encode())
            ahead = _relaying(channel)
            if ahead is None:
                raise ForwardError(f"{self.name}: {_why_ended(channel)}")
            channel.settimeout(None)
            return channel, ahead
        except ForwardError:
            channel.close()
            self._release(channel)
            raise
        except Exception as error:  # paramiko's SSHException, EOFError, socket.timeout...
            if channel is not None:
                channel.close()
                self._release(channel)
            raise ForwardError(f"{self.name}: cannot relay to 127.0.0.1:{port}: "
                               f"{error or type(error).__name__}") from None

    def _accept(self, listener, port, remote):
        """
        Serve each connection to *listener* (on *port*) until `close`. Any other failure
        of accept (EMFILE, ENFILE, ENOBUFS, ECONNABORTED...) passes: the listener stays
        open, so the loop goes on, warned once of each new error, every `RETRY` seconds.
        """
        failed = None
        while not self._closing.is_set():
            try:
                local, origin = listener.accept()
            except OSError as error:
                if self._closing.is_set():  # the listener was closed by `close`
                    return
                if error.errno != failed:
                    self.warn(f"127.0.0.1:{port} cannot accept a connection: {error.strerror} "
                              f"({errno.errorcode.get(error.errno, error.errno)}); "
                              f"trying again every {RETRY} s")
                failed = error.errno
                self._closing.wait(RETRY)
                continue
            failed = None
            threading.Thread(target=self._serve, args=(local, remote, origin), daemon=True).start()

    def _serve(self, local, remote, origin):
        """One connection, served by `_forward`: what fails there (as the process ends with
        Ctrl-C, a connection being opened meets a closed socket or SSH connection) ends that
        connection alone, said to *warn* unless the forwards are closing, never a traceback."""
        try:
            self._forward(local, remote, origin)
        except Exception as error:  # noqa: BLE001 -- this connection ends, the others go on
            local.close()
            if not self._closing.is_set():
                self.warn(f"a connection forwarded to port {remote} ended: {type(error).__name__}: {error}")

    def _forward(self, local, remote, origin):
        """Open the connection's channel, then copy both ways until either side ends."""
        try:
            channel, ahead = self._open(remote, origin)
        except ForwardError as error:
            self.warn(f"a connection to 127.0.0.1:{local.getsockname()[1]} was refused: {error}")
            local.close()
            return
        back = threading.Thread(target=_copy_to_socket, args=(channel, local, ahead), daemon=True)
        back.start()
        try:
            while data := local.recv(CHUNK):
                channel.sendall(data)
            channel.shutdown_write()
        except Exception:  # the local side reset, or the channel ended (paramiko raises
            channel.close()  # OSError, EOFError or SSHException): this connection ends
        back.join()
        channel.close()
        self._release(channel)
        local.close()

    def _session(self):
        """A session channel on the first SSH connection that holds fewer than `SESSIONS`
        relays, opened by *more* when none does (without it, on the least loaded)."""
        with self._lock:
            live = [t for t in self._relays if t.is_active()]
            transport = next((t for t in live if self._relays[t] < SESSIONS), None)
            if transport is None and self.more is not None:
                transport = self.more()
            transport = transport or min(live or self._relays, key=self._relays.get)
            self._relays[transport] = self._relays.get(transport, 0) + 1
        try:
            return transport.open_session(timeout=self.timeout)
        except Exception:
            with self._lock:
                self._relays[transport] -= 1
            raise

    def _release(self, channel):
        """A relay's *channel* ended: its connection holds one fewer."""
        if self.relay:
            with self._lock:
                transport = channel.get_transport()
                if self._relays.get(transport):
                    self._relays[transport] -= 1


def _relaying(channel):
    """What a relay's channel brought after its `RELAYING` line (the lines before it are a
    login shell's), or None when it ended without that line."""
    got = b""
    while len(got) <= BEFORE_RELAYING:
        data = channel.recv(CHUNK)
        if not data:
            return None
        got += data
        lines = got.split(b"\n")
        for number, line in enumerate(lines[:-1]):
            if line == RELAYING:
                return b"\n".join(lines[number + 1:])
    return None


def _why_ended(channel):
    """The last line a relay that ended said on stderr (why it refused), or its exit status."""
    said = b""
    while len(said) <= BEFORE_RELAYING and (data := channel.recv_stderr(CHUNK)):
        said += data
    lines = said.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"the relay ended (exit {channel.recv_exit_status()})"


def _copy_to_socket(channel, local, ahead=b""):
    """*ahead*, then what the channel brings, to the local socket; at its end, end the local side."""
    try:
        if ahead:
            local.sendall(ahead)
        while data := channel.recv(CHUNK):
            local.sendall(data)
    except Exception:  # as in `Forwards._serve`: this connection ends
        pass
    try:
        local.shutdown(socket.SHUT_RDWR)  # also wakes the other direction's recv
    except OSError:
        pass
