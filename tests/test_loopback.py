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


@needs_root
def test_the_step_as_the_master_runs_it_names_who_holds_the_port(tmp_path):
    """``port_holder`` run by ``/bin/sh -s`` as on a host, loopback.py shipped on its stdin:
    this user's listener is its own; nobody's is named; no listener is no one's."""
    settings = Settings(cluster_env=str(Path(sys.executable).parent.parent), cluster_name="t")
    (tmp_path / "tmp").mkdir()

    def holder(port):
        out = subprocess.run(commands.REMOTE_SHELL, shell=True, cwd=tmp_path, capture_output=True, text=True,
                             input=commands.script(settings, commands.port_holder(port)),
                             env=dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path / "tmp")),
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert holder(server.getsockname()[1]) == "own=yes\nholder=\n"
    port = free_port()
    assert holder(port) == "own=no\nholder=\n"
    with spy("nobody", port, tmp_path):
        assert holder(port) == "own=no\nholder=nobody\n"
    assert list((tmp_path / "tmp").iterdir()) == []
