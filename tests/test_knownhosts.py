"""
Unit tests of known_hosts reading and appending, with OpenSSH's own ``ssh-keygen``
as the referee for the lines we write and the hashed names it writes.
"""

import os
import shutil
import stat
import subprocess

import pytest

from tasks.ssh import knownhosts

ED = "AAAAC3NzaC1lZDI1NTE5AAAAIGyJYKg0mPzvB1GZ5bAg1lEcmLjm3tlTzn0vG7vNqOX8"
SK = ("AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIBcKt0q8xt2/7eP6OuhFx3BJqLeCSHV0ozP8f7r4F0"
      "6eAAAABHNzaDo=")
needs_ssh_keygen = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")

# Every kind of line OpenSSH accepts, and some it skips; none may stop a task.
EVERY_KIND = f"""\
# a comment, then a blank line

node01 ssh-ed25519 {ED} alice@laptop
node02,10.0.0.2,node02.lab ssh-ed25519 {ED}
[node03]:2222 ssh-ed25519 {ED}
*.gpu.lab,!login.gpu.lab ssh-ed25519 {ED}
rack?-node ssh-ed25519 {ED}
@cert-authority *.lab ssh-ed25519 {ED}
@revoked * sk-ssh-ed25519@openssh.com {SK}
sk-node sk-ssh-ed25519@openssh.com {SK}
a line paramiko cannot read
node04 ssh-ed25519 not!base64
@unknown-marker node05 ssh-ed25519 {ED}
\tnode06   ssh-ed25519   {ED}
"""


def names(entries, name):
    known, revoked = knownhosts.for_host(entries, name)
    return [e.keytype for e in known], [e.keytype for e in revoked]


def test_every_kind_of_line_is_read_or_skipped_as_openssh_does():
    entries = knownhosts.parse(EVERY_KIND)
    assert [(e.marker, e.hosts) for e in entries] == [
        ("", "node01"), ("", "node02,10.0.0.2,node02.lab"), ("", "[node03]:2222"),
        ("", "*.gpu.lab,!login.gpu.lab"), ("", "rack?-node"), ("@cert-authority", "*.lab"),
        ("@revoked", "*"), ("", "sk-node"), ("", "node06")]


@pytest.mark.parametrize("name, known", [
    ("node01", ["ssh-ed25519"]), ("NODE01", ["ssh-ed25519"]), ("10.0.0.2", ["ssh-ed25519"]),
    ("node03", []), ("[node03]:2222", ["ssh-ed25519"]), ("[node01]:2222", []),
    ("a.gpu.lab", ["ssh-ed25519"]), ("login.gpu.lab", []), ("rack1-node", ["ssh-ed25519"]),
    ("rack12-node", []), ("x.lab", []), ("sk-node", ["sk-ssh-ed25519@openssh.com"]),
    ("node05", []), ("node06", ["ssh-ed25519"]),
])
def test_a_host_finds_its_lines_by_name_port_list_wildcard_and_negation(name, known):
    assert names(knownhosts.parse(EVERY_KIND), name) == (known, [
        "sk-ssh-ed25519@openssh.com"])


def test_the_name_of_a_host_carries_its_port_unless_it_is_22():
    assert knownhosts.host_name("node", 22) == knownhosts.host_name("node", None) == "node"
    assert knownhosts.host_name("node", 2222) == "[node]:2222"


@needs_ssh_keygen
@pytest.mark.parametrize("name", ["node07", "[node07]:2222"])
def test_a_hashed_line_we_write_is_found_by_openssh_and_one_it_hashes_by_us(tmp_path, name):
    path = tmp_path / "known_hosts"
    path.write_text(knownhosts.line_for(name, "ssh-ed25519", ED, hashed=True))
    assert path.read_text().startswith("|1|") and "node07" not in path.read_text()
    found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0 and ED in found.stdout

    plain = tmp_path / "plain"
    plain.write_text(knownhosts.line_for(name, "ssh-ed25519", ED))
    subprocess.run(["ssh-keygen", "-H", "-f", str(plain)], check=True, capture_output=True)
    entries = knownhosts.parse(plain.read_text())
    assert entries[0].hosts.startswith("|1|")
    assert names(entries, name) == (["ssh-ed25519"], [])
    assert names(entries, "node08") == ([], [])


def test_an_append_keeps_every_byte_and_the_mode(tmp_path):
    path = tmp_path / "known_hosts"
    original = EVERY_KIND.encode() + b"last line without an end"
    path.write_bytes(original)
    path.chmod(0o644)
    with knownhosts.locked(str(path)) as append:
        append("new ssh-ed25519 KEY\n")
        append("newer ssh-ed25519 KEY\n")
    assert path.read_bytes() == original + b"\nnew ssh-ed25519 KEY\nnewer ssh-ed25519 KEY\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_missing_file_is_created_private_with_its_folder(tmp_path):
    path = tmp_path / "ssh" / "known_hosts"
    assert knownhosts.read(str(path)) == []
    with knownhosts.locked(str(path)) as append:
        append("new ssh-ed25519 KEY\n")
    assert path.read_text() == "new ssh-ed25519 KEY\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_lock_is_held_against_other_processes(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("")
    with knownhosts.locked(str(path)):
        other = subprocess.run(["flock", "-n", str(path), "true"])
    assert other.returncode != 0
    assert subprocess.run(["flock", "-n", str(path), "true"]).returncode == 0


def test_an_unreadable_file_reads_as_empty(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_bytes(b"\xff\xfe garbage\x00\n" + f"node01 ssh-ed25519 {ED}\n".encode())
    assert names(knownhosts.read(str(path)), "node01") == (["ssh-ed25519"], [])
    if os.geteuid() != 0:  # root reads anything
        path.chmod(0)
        assert knownhosts.read(str(path)) == []
