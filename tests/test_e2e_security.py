"""
End to end: bad input runs nothing anywhere, host keys are checked, secrets stay secret.
"""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from tasks.ssh import auth
from tests.conftest import engines_per_host, fab, write_inventory
from tests.waiting import wait_until

MASTER = "[master]\n127.0.2.2\n"


def marker(tmp_path):
    return tmp_path / "pwned"


BAD_INVENTORIES = [
    # (hosts, cluster.env, file, line, reason)
    ("[master]\n127.0.2.2\n[engines]\n127.0.2.3 engines=abc\n", "", "hosts", 4,
     "engines='abc' must be a whole number of at least 1"),
    ("[master]\n127.0.2.2\n[engines]\n127.0.2.3 engines=0\n", "", "hosts", 4,
     "engines='0' must be a whole number of at least 1"),
    ("[master]\n127.0.2.2\n[engines]\n127.0.2.3\n127.0.2.3\n", "", "hosts", 5,
     "duplicate host '127.0.2.3' in [engines]"),
    ("[engines]\n127.0.2.3\n", "", "hosts", 0, "no [master] section with a host"),
    ("[master]\n127.0.2.2\n[engines]\n127.0.2.[9:3]\n", "", "hosts", 4,
     "bad range [9:3] in '127.0.2.[9:3]': its start is after its end"),
    ("[master]\n127.0.2.2:99999\n", "", "hosts", 2,
     "port 99999 of '127.0.2.2:99999' is out of range (1-65535)"),
    ("[master]\n127.0.2.2 extra\n", "", "hosts", 2, "cannot parse 'extra': expected key=value "
     "(a host line is NAME [key=value ...])"),
    (MASTER, "WORKERS=3\n", "cluster.env", 1, "unknown setting 'WORKERS'; known: CLUSTER_ENV, "
     "CLUSTER_NAME, IPP_PROFILE, JUPYTER_PORT, ENGINE_TIMEOUT, CONNECT_TIMEOUT, PARALLEL, "
     "ENCRYPT, KNOWN_HOSTS, HOST_KEY_CHECKING, SHARED_HOME, NOTEBOOK_DIR, CONTROLLER_ADDRESS, ENGINE_RESTART, MEMORY_LIMIT, "
     "ENGINE_THREADS, SETUP, SLURM_WAIT, CONTROLLER_PORTS, CONTROLLER_INTERFACE"),
    (MASTER, "CLUSTER_ENV=opt/env\n", "cluster.env", 1,
     "CLUSTER_ENV='opt/env' must be an absolute path or one under ~/, of letters, digits and ._/+@-"
     " (or empty)"),
    (MASTER, "CLUSTER_ENV=/opt/env; touch {marker}\n", "cluster.env", 1,
     "CLUSTER_ENV='/opt/env; touch {marker}' must be an absolute path or one under ~/, of letters, "
     "digits and ._/+@- (or empty)"),
    ("[master]\n127.0.2.2;touch {marker}\n", "", "hosts", 2, "bad host '127.0.2.2;touch': "
     "expected [user@]host[:port] with letters, digits, '.', '-' or '_'"),
    ("[master]\nhost$(touch {marker})\n", "", "hosts", 2, "bad host 'host$(touch': "
     "expected [user@]host[:port] with letters, digits, '.', '-' or '_'"),
    ("[master]\n127.0.2.2\n[engines]\n`touch {marker}`\n", "", "hosts", 4, "bad host '`touch': "
     "expected [user@]host[:port] with letters, digits, '.', '-' or '_'"),
    ("[master]\n127.0.2.2\n[engines]\nnode 01\n", "", "hosts", 4,
     "cannot parse '01': expected key=value (a host line is NAME [key=value ...])"),
]


@pytest.mark.parametrize("hosts, env, file, line, reason", BAD_INVENTORIES)
def test_bad_inventory_is_named_and_nothing_runs_anywhere(fake_hosts, tmp_path, hosts, env, file,
                                                         line, reason):
    values = {"marker": marker(tmp_path)}
    folder = tmp_path / "inv"
    folder.mkdir()
    (folder / "hosts").write_text(hosts.format(**values))
    (folder / "cluster.env").write_text(env.format(**values))
    logs = {h.name: os.path.getsize(h.keys / f"{h.name}.sshd.log") for h in fake_hosts.hosts}
    for task in ("cluster.up", "cluster.status", "cluster.down"):
        result = fab(task, inventory=folder, key=fake_hosts.client_key)
        where = f"{folder / file}:{line}" if line else f"{folder / file}"
        assert (result.returncode, result.stderr.strip()) == (2, f"error: {where}: {reason.format(**values)}")
    assert not marker(tmp_path).exists()
    assert logs == {h.name: os.path.getsize(h.keys / f"{h.name}.sshd.log") for h in fake_hosts.hosts}


def test_missing_inventory_folder(tmp_path):
    result = fab("cluster.up", inventory=tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'nowhere'}: inventory folder does not "
                                     "exist (set CLUSTER_INVENTORY)")


def _status(fake_hosts, tmp_path, known_hosts, **settings):
    inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.5\n",
                                KNOWN_HOSTS=known_hosts, CLUSTER_NAME="keys", **settings)
    return fab("master.status", inventory=inventory, key=fake_hosts.client_key)


def test_a_changed_host_key_is_refused_before_anything_runs(fake_hosts, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    known = tmp_path / "known_hosts"
    known.write_text("127.0.2.5 " + " ".join((tmp_path / "other.pub").read_text().split()[:2]) + "\n")
    log = fake_hosts.keys / "host5.sshd.log"
    accepted_before = log.read_text().count("Accepted publickey")
    result = _status(fake_hosts, tmp_path, known)
    assert result.returncode == 1
    assert ("error: 127.0.2.5: REFUSED: the host key of 127.0.2.5 has changed (a man in the middle,"
            " or a reinstalled host); if you know why, remove the old key with: ssh-keygen -f "
            f"{known} -R 127.0.2.5") in result.stderr
    assert log.read_text().count("Accepted publickey") == accepted_before


def test_strict_checking_refuses_an_unknown_host(fake_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    result = _status(fake_hosts, tmp_path, known, HOST_KEY_CHECKING="strict")
    assert result.returncode == 1
    assert (f"error: 127.0.2.5: host key of 127.0.2.5 is not in {known} and "
            "HOST_KEY_CHECKING=strict; add it with: ssh-keyscan 127.0.2.5 >> "
            f"{known}") in result.stderr
    assert not known.exists()


def test_encrypted_cluster_registers_engines_and_keeps_its_keys_private(fake_hosts, tmp_path):
    inventory = write_inventory(
        tmp_path / "inv", "[master]\n127.0.2.2\n[engines]\n127.0.2.3 engines=2\n",
        CLUSTER_ENV=sys.prefix, CLUSTER_NAME="sec", IPP_PROFILE="sec", JUPYTER_PORT=18821,
        ENCRYPT="yes", KNOWN_HOSTS=fake_hosts.known_hosts)
    try:
        up = fab("cluster.up", inventory=inventory, key=fake_hosts.client_key)
        assert up.returncode == 0, up.stdout + up.stderr
        assert engines_per_host("sec") == {"host3": 2}
        security = os.path.expanduser("~/.ipython/profile_sec/security")
        for name in ("ipcontroller-engine.json", "ipcontroller-client.json"):
            path = os.path.join(security, name)
            assert oct(os.stat(path).st_mode & 0o777) == "0o600"
            with open(path) as connection_file:
                assert json.load(connection_file)["curve_serverkey"]
        # the engine host's sample reaches the controller's host inbox, under Curve too
        report = Path.home() / ".ipp-cluster" / "sec" / "host2" / "hosts" / "127.0.2.3.json"
        wait_until(lambda: len(json.loads(report.read_text())["engines"]) == 2, 30,
                   "a report of 127.0.2.3's 2 engines at the controller", interval=0.5)
    finally:
        assert fab("cluster.down", inventory=inventory, key=fake_hosts.client_key).returncode == 0


def test_the_keys_a_failed_login_names_are_the_ones_paramiko_tried(fake_hosts, tmp_path,
                                                                   monkeypatch):
    """auth.keys_tried against paramiko's own log of the keys it loaded, on a real login."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    for kind in ("rsa", "ecdsa", "ed25519", "dsa"):  # no DSA in paramiko 5: it must be left out
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(ssh / f"id_{kind}")],
                       capture_output=True)
    if not (ssh / "id_dsa").exists():  # this ssh-keygen makes none any more
        (ssh / "id_dsa").write_text("an old DSA key\n")
    named = tmp_path / "lab_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(named)], check=True)
    messages = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("paramiko")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    host = fake_hosts.hosts[0]
    try:
        with pytest.raises(paramiko.AuthenticationException):
            client.connect(host.address, username="root", key_filename=[str(named)],
                           allow_agent=False, look_for_keys=True, timeout=30)
        port = client.get_transport().sock.getsockname()[1]
    finally:
        client.close()
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    # sshd logs the end of this login after it: wait for it, so that a test after this one
    # that compares the host's log before and after its own commands sees only them.
    host.wait_for_log(f"port {port} [preauth]", time.monotonic() + 15)
    tried = [m.split(" in ", 1)[1] for m in messages if m.startswith("Trying discovered key")]
    expected = auth.keys_tried({"key_filename": [str(named)], "allow_agent": False})
    assert tried == [os.path.expanduser(path) for path in expected]
    assert len(tried) == 4  # the named key, then rsa, ecdsa, ed25519
