"""
Unit tests of who holds a loopback port (``tasks/remote/shared/loopback.py``), read from
/proc/net/tcp and tcp6 as any user can: this user's listener, and another user's
(nobody's, run with setpriv: needs root).
"""

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.inventory.folder import Settings
from tasks import commands
from tasks.remote.shared import loopback
from tests.spy import spy

NOBODY = pwd.getpwnam("nobody").pw_uid
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a listener as nobody: needs root")


def free_port():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def test_this_users_own_listener_is_this_users():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert loopback.listener_uids(port) == {os.getuid()}
        with socket.create_connection(("127.0.0.1", port)) as client:
            assert loopback.server_uid(client) == os.getuid()
            assert loopback.connect_own(port, 2) is not None


def test_a_port_nobody_listens_on_has_no_listener():
    port = free_port()
    assert loopback.listener_uids(port) == set()
    assert loopback.connect_own(port, 2) is None


@needs_root
@pytest.mark.parametrize("where", ["loopback", "any6"])
def test_another_users_listener_is_theirs_and_refused(tmp_path, where):
    """nobody on 127.0.0.1, or on [::] (dual stack: it takes the IPv4 connections too, and
    appears in /proc/net/tcp6 with IPv4-mapped addresses)."""
    port = free_port()
    with spy("nobody", port, tmp_path, where) as other:
        assert loopback.listener_uids(port) == {NOBODY}
        with socket.create_connection(("127.0.0.1", port)) as client:
            assert loopback.server_uid(client) == NOBODY
        assert loopback.connect_own(port, 2) is None
    assert other.heard() == b""


@pytest.mark.skipif(sys.byteorder != "little", reason="the samples are of a little-endian host")
def test_addresses_of_proc_net_are_read_in_host_order():
    assert loopback.address("0100007F:22B8") == ("127.0.0.1", 8888)
    assert loopback.address("0000000000000000FFFF00000100007F:22B8") == ("127.0.0.1", 8888)
    assert loopback.address("00000000000000000000000000000000:22B8") == ("::", 8888)
    assert loopback.address("00000000000000000000000001000000:22B8") == ("::1", 8888)


def relay(port, tmp_path):
    """``relay`` run by ``/bin/sh -s`` as on the master (loopback.py shipped with the script, the
    connection's bytes after it on the same stdin): its process, once the script is sent."""
    settings = Settings(cluster_env=str(Path(sys.executable).parent.parent), cluster_name="t")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process = subprocess.Popen(commands.REMOTE_SHELL, shell=True, cwd=tmp_path, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path / "tmp")))
    process.stdin.write(commands.script(settings, commands.relay(port)).encode())
    process.stdin.flush()
    return process


def test_the_relay_copies_both_ways_to_this_users_listener(tmp_path):
    """Its first line says it holds a connection proven this user's; then what comes on
    stdin reaches the listener and its answer comes out, until the listener ends."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        process = relay(server.getsockname()[1], tmp_path)
        assert process.stdout.readline() == b"relay=yes\n"
        process.stdin.write(b"ping")
        process.stdin.close()
        connection, _ = server.accept()
        with connection:
            assert connection.recv(4) == b"ping"
            connection.sendall(b"pong")
    assert process.stdout.read() == b"pong"
    assert process.wait(timeout=30) == 0, process.stderr.read()
    assert list((tmp_path / "tmp").iterdir()) == []


@needs_root
def test_the_relay_sends_nothing_to_another_users_listener_and_names_them(tmp_path):
    """Whoever held the port before (a check made then says nothing of now): the relay proves
    the very connection it would copy into, and refuses another user's."""
    port = free_port()
    with spy("nobody", port, tmp_path) as other:
        process = relay(port, tmp_path)
        out, err = process.communicate(timeout=60)
        heard = other.heard()
    assert process.returncode != 0 and out == b"" and heard == b""
    assert err == f"127.0.0.1:{port} is held by nobody, not by this user's Jupyter\n".encode()
    process = relay(port, tmp_path)
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0 and out == b""
    assert err == f"nothing of this user's listens on 127.0.0.1:{port}: is Jupyter running?\n".encode()
    assert list((tmp_path / "tmp").iterdir()) == []
