"""
Who holds a TCP port of this host's loopback, read from /proc/net/tcp and tcp6, which
any user can read (psutil's ``net_connections`` names other users' sockets only to root).

The probe asks Jupyter on 127.0.0.1:JUPYTER_PORT with its token (``tasks/remote/master/probe.py``,
which ships this file beside it), and ``cluster.tunnel`` forwards a browser's connection there
through `relay`. While this user's Jupyter does not hold that port (it is
stopped, or runs on another port) any other user of the master may listen there, and would
receive the token and log into this user's Jupyter. `connect_own` connects, then proves the
server end of that very connection this user's before anything is sent: a connection's
server end has its listener's uid (the kernel gives it to the connection when the handshake
completes, and /proc/net lists it before ``accept``), so no other listener can take the port
between the check and the sending.
"""

import os
import pwd
import socket
import sys
import threading
import time

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
#: States in /proc/net/tcp: listening; a connection's server end, accepted or not yet.
LISTEN, CONNECTED = "0A", ("01", "03")
#: The addresses of a listener that takes the connections to 127.0.0.1 (``::``: a dual-stack one).
TAKES_LOOPBACK = ("127.0.0.1", "0.0.0.0", "::")
#: Tries, and seconds between them, to find a new connection's server end in /proc/net
#: (with SYN cookies it is made when the server's kernel reads the last ACK, a moment later).
FIND_TRIES, FIND_POLL = 20, 0.01
#: Seconds that `relay` waits for its connection; bytes it copies at a time.
CONNECT_TIMEOUT, CHUNK = 10, 65536


def address(field):
    """``(host, port)`` of an address of /proc/net/tcp(6), ``HEX:PORT`` (the address as 32-bit
    words in host byte order); an IPv4-mapped IPv6 address is given as its IPv4 address."""
    host, port = field.split(":")
    raw = b"".join(int(host[i:i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(host), 8))
    if len(raw) == 16 and raw[:12] == bytes(10) + b"\xff\xff":
        raw = raw[12:]
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw), int(port, 16)


def sockets():
    """``(local, remote, state, uid)`` of each TCP socket of this network namespace."""
    for table in TABLES:
        try:
            with open(table) as file:
                rows = file.read().splitlines()[1:]
        except OSError:  # a kernel without IPv6
            continue
        for row in rows:
            fields = row.split()  # sl local remote st queues timer retransmits uid ...
            yield address(fields[1]), address(fields[2]), fields[3], int(fields[7])


def listener_uids(port):
    """The uids of the listeners that take the connections to 127.0.0.1:*port* (none: empty)."""
    return {uid for local, _, state, uid in sockets()
            if state == LISTEN and local[1] == port and local[0] in TAKES_LOOPBACK}


def server_uid(connection):
    """The uid of the server end of *connection* (a TCP socket connected to this host), or
    None when /proc/net lists no such end, or two of different users."""
    mine, theirs = connection.getsockname()[:2], connection.getpeername()[:2]
    for _ in range(FIND_TRIES):
        uids = {uid for local, remote, state, uid in sockets()
                if state in CONNECTED and local == theirs and remote == mine}
        if uids:
            return uids.pop() if len(uids) == 1 else None
        time.sleep(FIND_POLL)
    return None


def connect_own(port, timeout):
    """A socket connected to 127.0.0.1:*port* whose server end is this user's, or None: nothing
    listens there, or another user's program does (which got a connection, and no byte)."""
    try:
        connection = socket.create_connection(("127.0.0.1", port), timeout)
    except OSError:
        return None
    if server_uid(connection) != os.geteuid():
        connection.close()
        return None
    return connection


def other_holder(port):
    """The name of another user whose program takes the connections to 127.0.0.1:*port*, or ''."""
    others = sorted(listener_uids(port) - {os.geteuid()})
    if not others:
        return ""
    try:
        return pwd.getpwuid(others[0]).pw_name
    except KeyError:
        return f"uid {others[0]}"


def relay(port):
    """
    ``python RUN_DIR/ipp_remote shared.loopback relay PORT`` (``tasks/remote/steps/master/relay.sh``, one per connection that
    ``cluster.tunnel`` forwards to Jupyter): connect to 127.0.0.1:*port* with `connect_own`,
    say ``relay=yes``, then copy stdin to the connection and the connection to stdout until
    it ends. The very connection that the browser's bytes (its token) go into is proven
    this user's: a check made before it says nothing of the listener it reaches. Refused,
    it says why on stderr (naming another user who listens there) and returns 1.
    """
    connection = connect_own(port, CONNECT_TIMEOUT)
    if connection is None:
        holder = other_holder(port)
        sys.stderr.write(f"127.0.0.1:{port} is held by {holder}, not by this user's Jupyter\n" if holder else
                         f"nothing of this user's listens on 127.0.0.1:{port}: is Jupyter running?\n")
        return 1
    connection.settimeout(None)  # a kernel's websocket may be idle for hours
    _write(b"relay=yes\n")
    threading.Thread(target=_to_socket, args=(connection,), daemon=True).start()
    try:
        while data := connection.recv(CHUNK):
            _write(data)
    except OSError:  # reset by Jupyter, or stdout closed by sshd: this connection ends
        pass
    return 0


def _to_socket(connection):
    """Stdin (the browser's bytes) into *connection*; at its end, end that direction."""
    try:
        while data := os.read(0, CHUNK):
            connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _write(data):
    """All of *data* to stdout, unbuffered (a write to a pipe may take part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


if __name__ == "__main__":  # python RUN_DIR/ipp_remote shared.loopback relay PORT
    sys.exit(relay(int(sys.argv[2])) if sys.argv[1] == "relay" else 2)
