"""
End to end: the user's known_hosts is read as OpenSSH reads it and only ever
appended to, by fab and OpenSSH's ``ssh`` alike, on the fake hosts.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import FAB, PROJECT, fab, leftovers, write_inventory
from tests.test_knownhosts import EVERY_KIND


def host_key(fake_hosts):
    """The fake hosts' key (they share one): ``(type, base64)``."""
    return tuple((fake_hosts.keys / "host_key.pub").read_text().split()[:2])


def ssh_config(tmp_path, hashed):
    path = tmp_path / f"ssh_config_{hashed}"
    path.write_text(f"Host *\n  HashKnownHosts {hashed}\n")
    return path


def lines_for(known, name):
    """How many lines of *known* OpenSSH finds for *name* (``ssh-keygen -F``), markers aside."""
    out = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)], capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith(("#", "@")))


def openssh(fake_hosts, known, port, *options):
    """``ssh -p PORT root@127.0.2.5 true`` with *known* as the only known_hosts file."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(fake_hosts.client_key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
         "-o", "GlobalKnownHostsFile=/dev/null", *options, "-p", str(port), "root@127.0.2.5", "true"],
        capture_output=True, text=True, timeout=30)


def test_every_line_is_kept_byte_for_byte_and_new_hosts_are_appended(fake_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    original = EVERY_KIND.encode() + b"# the last line has no end"
    known.write_bytes(original)
    known.chmod(0o640)
    inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=1\n",
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME="kh", IPP_PROFILE="kh",
                                JUPYTER_PORT=18831, KNOWN_HOSTS=known)
    try:
        up = fab("cluster.up", inventory=inventory, key=fake_hosts.client_key)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Traceback" not in up.stderr
    finally:
        down = fab("cluster.down", inventory=inventory, key=fake_hosts.client_key)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2)) == {}
    after = known.read_bytes()
    assert after.startswith(original + b"\n")
    added = after[len(original) + 1:].decode().splitlines()
    assert len(added) == 2 and all(line.startswith("|1|") for line in added)  # Debian: hashed
    assert lines_for(known, "127.0.2.1") == lines_for(known, "127.0.2.2") == 1
    assert oct(known.stat().st_mode & 0o777) == "0o640"


def test_a_revoked_key_is_refused_before_anything_runs(fake_hosts, tmp_path):
    keytype, key = host_key(fake_hosts)
    known = tmp_path / "known_hosts"
    known.write_text(f"127.0.2.5 {keytype} {key}\n@revoked 127.0.2.5 {keytype} {key}\n")
    inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.5\n", CLUSTER_NAME="rev",
                                KNOWN_HOSTS=known)
    log = fake_hosts.keys / "host5.sshd.log"
    accepted_before = log.read_text().count("Accepted publickey")
    result = fab("cluster.run", "true", inventory=inventory, key=fake_hosts.client_key)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: 127.0.2.5: REFUSED: the host key of 127.0.2.5 is marked @revoked in {known}: it must"
        " never be trusted again; ask the host's administrator for its new key")
    assert log.read_text().count("Accepted publickey") == accepted_before


def test_two_fabs_at_once_each_add_their_new_hosts_exactly_once(fake_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("# mine\n")
    config = ssh_config(tmp_path, "no")
    groups = [["127.0.2.1", "127.0.2.2", "127.0.2.1:2222"], ["127.0.2.3", "127.0.2.4", "127.0.2.3:2222"],
              ["127.0.2.5", "127.0.2.5:2222", "127.0.2.2:2222"]]
    runs = []
    for number, group in enumerate(groups):
        inventory = write_inventory(tmp_path / f"inv{number}", "[master]\n" + group[0] + "\n[engines]\n"
                                    + "".join(f"{h}\n" for h in group[1:]), KNOWN_HOSTS=known)
        runs.append(subprocess.Popen(
            [str(FAB), "-i", str(fake_hosts.client_key), "--ssh-config", str(config), "cluster.run", "true"],
            cwd=PROJECT, env=dict(os.environ, CLUSTER_INVENTORY=str(inventory)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    lines = known.read_text().splitlines()
    assert lines[0] == "# mine" and len(lines) == 10
    names = sorted(line.split()[0] for line in lines[1:])
    assert names == sorted(["127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4", "127.0.2.5",
                            "[127.0.2.1]:2222", "[127.0.2.3]:2222", "[127.0.2.5]:2222",
                            "[127.0.2.2]:2222"])


@pytest.mark.parametrize("hashed", ["yes", "no"])
@pytest.mark.parametrize("port", [22, 2222])
def test_openssh_and_fab_accept_what_the_other_recorded(fake_hosts, tmp_path, hashed, port):
    host = "127.0.2.5" if port == 22 else f"127.0.2.5:{port}"
    name = "127.0.2.5" if port == 22 else f"[127.0.2.5]:{port}"

    # OpenSSH records, fab accepts without a new line.
    by_openssh = tmp_path / "by_openssh"
    recorded = openssh(fake_hosts, by_openssh, port, "-o", "StrictHostKeyChecking=accept-new",
                       "-o", f"HashKnownHosts={hashed}")
    assert recorded.returncode == 0, recorded.stderr
    before = by_openssh.read_bytes()
    assert (b"|1|" in before) == (hashed == "yes") and lines_for(by_openssh, name) == 1
    inventory = write_inventory(tmp_path / "inv", f"[master]\n{host}\n", KNOWN_HOSTS=by_openssh,
                                HOST_KEY_CHECKING="strict")
    result = fab("cluster.run", "true", inventory=inventory, key=fake_hosts.client_key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert by_openssh.read_bytes() == before

    # fab records, OpenSSH with strict checking accepts.
    by_fab = tmp_path / "by_fab"
    inventory = write_inventory(tmp_path / "inv2", f"[master]\n{host}\n", KNOWN_HOSTS=by_fab)
    result = fab("--ssh-config", str(ssh_config(tmp_path, hashed)), "cluster.run", "true",
                 inventory=inventory, key=fake_hosts.client_key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (by_fab.read_text().startswith("|1|")) == (hashed == "yes")
    assert lines_for(by_fab, name) == 1
    checked = openssh(fake_hosts, by_fab, port, "-o", "StrictHostKeyChecking=yes")
    assert checked.returncode == 0, checked.stderr
