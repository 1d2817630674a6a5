"""
Unit tests of the runner's fan-out and of how it names each outcome, with Fabric's
own mocked SSH sessions (`fabric.testing`): no SSH, no root.
"""

import getpass
import socket
import threading

import pytest
from fabric.testing.base import Command, MockRemote, Session
from paramiko import ECDSAKey
from paramiko.ssh_exception import AuthenticationException, BadHostKeyException

from tasks.inventory.folder import Host, Settings
from tasks import commands
from tasks.ssh import auth
from tasks.ssh.fleet import AUTH_FAILED, FAILED, OK, UNREACHABLE, Fleet

SETTINGS = Settings(parallel=2, known_hosts="/nonexistent/known_hosts")
HOSTS = [Host(f"node0{n}", f"node0{n}") for n in range(1, 6)]


@pytest.fixture
def remote():
    """Mocked SSH sessions, one per connection, in the order the fleet connects."""
    mocked = MockRemote()
    yield mocked
    mocked.stop()


def sessions(remote, *specs):
    """Expect one session per host; *specs* are `Session` keyword dicts (``raises``: on connect)."""
    made = [Session(**{k: v for k, v in spec.items() if k != "raises"}) for spec in specs]
    remote.expect_sessions(*made)
    for session, spec in zip(made, specs):
        if "raises" in spec:
            session.client.connect.side_effect = spec["raises"]
    return made


def test_each_host_gets_the_same_short_command_and_its_own_script_on_stdin(remote):
    made = sessions(remote, dict(cmd=commands.REMOTE_SHELL, out=b"banner\nexpected=2\n"),
                    dict(cmd=commands.REMOTE_SHELL, out=b"expected=4\n"))
    with Fleet(SETTINGS) as fleet:
        results = fleet.run({HOSTS[0]: "script one\n", HOSTS[1]: "script two\n"}, timeout=10)
    assert [(r.state, r.facts) for r in results.values()] == [(OK, {"expected": "2"}),
                                                              (OK, {"expected": "4"})]
    for session, script in zip(made, (b"script one\n", b"script two\n")):
        session.channels[0].exec_command.assert_called_with(commands.REMOTE_SHELL)
        assert session.channels[0]._stdin.getvalue() == script


def test_every_outcome_is_named_per_host_and_one_bad_host_stops_none(remote, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* keys, and no agent
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = ECDSAKey.generate()
    sessions(remote,
             dict(cmd=commands.REMOTE_SHELL, out=b"ok=1\n"),
             dict(cmd=commands.REMOTE_SHELL, out=b"half\n", err=b"warning\nscreen: not found\n", exit=3),
             dict(raises=socket.timeout("timed out")),
             dict(raises=BadHostKeyException("node04", key, ECDSAKey.generate())),
             dict(raises=AuthenticationException("Authentication failed.")))
    with Fleet(SETTINGS) as fleet:
        results = fleet.run({host: "x\n" for host in HOSTS}, timeout=10)
    assert [(name, r.state, r.reason) for name, r in results.items()] == [
        ("node01", OK, ""),
        ("node02", FAILED, "exit 3: screen: not found"),
        ("node03", UNREACHABLE, "unreachable: no answer from node03:22 within 10 s"),
        ("node04", UNREACHABLE, "REFUSED: the host key of node04 has changed (a man in the middle, or "
         "a reinstalled host); if you know why, remove the old key with: ssh-keygen -f "
         "/nonexistent/known_hosts -R node04"),
        ("node05", AUTH_FAILED, f"auth failed: {getpass.getuser()}@node05, keys tried: none "
         "(name one with fab -i KEY)"),
    ]
    assert results["node02"].stdout == "half\n"


def test_a_command_past_its_time_is_named_timed_out(remote):
    # invoke polls the channel every 10 ms: 200 polls outlast a 0.3 s limit
    sessions(remote, dict(commands=[Command(cmd=commands.REMOTE_SHELL, waits=200)]))
    with Fleet(SETTINGS) as fleet:
        result = fleet.run({HOSTS[0]: "x\n"}, timeout=0.3)["node01"]
    assert (result.state, result.reason) == (FAILED, "timed out after 0.3 s")


def test_at_most_parallel_hosts_run_at_once_with_as_many_threads(remote, monkeypatch):
    sessions(remote, *[dict(cmd=commands.REMOTE_SHELL)] * 5)
    running, most, threads, lock = [0], [0], set(), threading.Lock()
    real_run = __import__("fabric").Connection.run

    def counting_run(self, command, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            threads.add(threading.current_thread().name)
        try:
            threading.Event().wait(0.2)
            return real_run(self, command, **kwargs)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr("fabric.Connection.run", counting_run)
    with Fleet(SETTINGS) as fleet:
        results = fleet.run({host: "x\n" for host in HOSTS}, timeout=10)
    assert all(r.ok for r in results.values())
    assert most[0] == 2 and len(threads) == 2


def test_a_plain_connection_runs_a_command_as_fabric_does(remote):
    sessions(remote, dict(cmd="uname -n", out=b"node01\n"))
    with Fleet(SETTINGS) as fleet:
        result = fleet.connection(HOSTS[0]).run("uname -n", hide=True, in_stream=False)
    assert result.stdout == "node01\n"


def test_a_failed_login_names_the_keys_it_offered(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("a key")
    assert auth.keys_tried({"key_filename": ["/keys/lab"]}) == ["/keys/lab", "~/.ssh/id_ed25519"]
    assert auth.keys_tried({"key_filename": "/keys/lab", "look_for_keys": False}) == ["/keys/lab"]
