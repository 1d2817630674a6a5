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
the holding task when the SSH connection itself has ended.
"""

import errno
import socket
import threading

#: Bytes read at a time from either side of a forward.
CHUNK = 65536
#: Seconds between tries of a listener whose accept failed (out of file descriptors...).
RETRY = 0.1


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
    :param guard: if given, called with the remote port before each connection's channel
        is opened, in that connection's thread: a reason not to open it (the connection is
        closed, nothing of it forwarded, *warn* told), or ''. ``cluster.tunnel``'s asks the
        master whether Jupyter's port is still held by this user: the browser sends the
        token there.
    """

    def __init__(self, transport, remote_host, ports, timeout, warn, guard=None):
        self.transport, self.remote_host, self.timeout = transport, remote_host, timeout
        self.warn, self.problem, self.guard = warn, None, guard
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
        them, not only that the local port listens. Raises `ForwardError`."""
        for port in remote_ports:
            self._open(port, ("127.0.0.1", 0)).close()

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
        try:
            channel = self.transport.open_channel(
                "direct-tcpip", (self.remote_host, port), origin, timeout=self.timeout)
        except Exception as error:  # paramiko's ChannelException, SSHException, EOFError...
            raise ForwardError(f"the master cannot open {self.remote_host}:{port}: "
                               f"{error or type(error).__name__}") from None
        if channel is None:  # paramiko's answer when the transport closed meanwhile
            raise ForwardError(f"the master cannot open {self.remote_host}:{port}: "
                               "the SSH connection ended")
        return channel

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
        """Open the connection's channel (if the guard lets it), then copy both ways until
        either side ends."""
        try:
            refused = self.guard(remote) if self.guard else ""
        except Exception as error:  # the guard could not tell: nothing goes through
            refused = f"{type(error).__name__}: {error}"
        try:
            if refused:
                raise ForwardError(refused)
            channel = self._open(remote, origin)
        except ForwardError as error:
            self.warn(f"a connection to 127.0.0.1:{local.getsockname()[1]} was refused: {error}")
            local.close()
            return
        back = threading.Thread(target=_copy_to_socket, args=(channel, local), daemon=True)
        back.start()
        try:
            while data := local.recv(CHUNK):
                channel.sendall(data)
            channel.shutdown_write()
        except Exception:  # the local side reset, or the channel ended (paramiko raises
            channel.close()  # OSError, EOFError or SSHException): this connection ends
        back.join()
        channel.close()
        local.close()


def _copy_to_socket(channel, local):
    """What the channel brings, to the local socket; at its end, end the local side."""
    try:
        while data := channel.recv(CHUNK):
            local.sendall(data)
    except Exception:  # as in `Forwards._serve`: this connection ends
        pass
    try:
        local.shutdown(socket.SHUT_RDWR)  # also wakes the other direction's recv
    except OSError:
        pass
