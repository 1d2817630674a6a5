"""
Fake SSH hosts on this machine, and inventories for them: the harness of the
end-to-end tests and of the benchmark (``from tests.sshhosts import ...``).

Host N is a real ``sshd`` listening on 127.0.2.N, ports 22 and 2222, in its own mount, UTS and
PID namespaces: it has its own hostname (``hostN``), its own ``/run/screen``
and its own processes, and shares this machine's file system (like a cluster
with a shared home). Killing its sshd, pid 1 of its namespace, kills every
process on the host: a host crash. Needs root.
"""

import os
from contextlib import contextmanager
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests import fakegpu

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
Port 2222
HostKey {keys}/host_key
PidFile {keys}/{name}.pid
PermitRootLogin prohibit-password
AuthorizedKeysFile {keys}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
MaxStartups 100:30:200
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def why_not_available():
    """The reason fake hosts cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the SSH end-to-end tests need root (network namespaces for fake sshd hosts)"
    for program in (SSHD, shutil.which("unshare"), shutil.which("screen")):
        if not program or not os.path.exists(program):
            return f"missing {program or 'unshare/screen'}: install openssh-server and screen"
    return None


def write_inventory(folder, hosts_text, **settings):
    """Write an inventory folder with *hosts_text* and ``KEY=VALUE`` *settings*."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts").write_text(hosts_text)
    (folder / "cluster.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return folder


class FakeHost:
    """
    One fake host: ``name`` (hostN), ``address`` and its sshd process. On this machine's
    network its address is 127.0.2.N; with *network* (a `tests.testnet.TestNetwork`) the
    host is in a network namespace of its own, at its address there. *open_files*
    (``SOFT:HARD``) are the limits of open files its logins get. With *gpus*, the host has
    that many GPUs as far as ``nvidia-smi`` says (`tests.fakegpu`, in its /usr/local/bin
    alone: an overlay in its mount namespace). *overlays* (``{path: folder}``) lay more
    folders over the host's folders so, each over its path.
    """

    def __init__(self, number, keys, network=None, open_files=None, gpus=0, overlays=None):
        self.number, self.keys, self.open_files, self.gpus = number, keys, open_files, gpus
        self.overlays = overlays or {}
        self.name = f"host{number}"
        self.address = network.address(self.name) if network else f"127.0.2.{number}"
        self.netns = ["ip", "netns", "exec", network.namespace(self.name)] if network else []
        self.config = keys / f"{self.name}.sshd_config"
        self.config.write_text(SSHD_CONFIG.format(address=self.address, keys=keys, name=self.name))
        self.process = None

    def start(self, timeout=15):
        """Boot the host: start its sshd and wait until it answers."""
        limit = f"prlimit --nofile={self.open_files} " if self.open_files else ""
        mounts = ""
        if self.gpus:
            folder = self.keys / f"{self.name}.gpu-bin"
            folder.mkdir(mode=0o755, exist_ok=True)
            fakegpu.install(folder, self.gpus)
            mounts = f"mount -t overlay overlay -o lowerdir={folder}:/usr/local/bin /usr/local/bin; "
        mounts += "".join(f"mount -t overlay overlay -o lowerdir={folder}:{path} {path}; "
                        for path, folder in self.overlays.items())
        inner = (f"hostname {self.name}; mkdir -p /run/screen; mount -t tmpfs tmpfs /run/screen;"
                 f" chmod 777 /run/screen; {mounts}exec {limit}{SSHD} -D -e -f {self.config}")
        self.process = subprocess.Popen(
            [*self.netns, "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
             "--kill-child=SIGKILL", "sh", "-c", inner],
            stdout=subprocess.DEVNULL, stderr=open(self.keys / f"{self.name}.sshd.log", "ab"))
        deadline = time.monotonic() + timeout
        if self.netns:  # this process cannot reach it: sshd says when it listens
            self.wait_for_log(f"Server listening on {self.address} port 2222", deadline)
            return
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, 22), timeout=1) as sock:
                    probe_port = sock.getsockname()[1]
                    answered = sock.recv(4).startswith(b"SSH-")
            except OSError:
                time.sleep(0.05)
                continue
            if answered:
                self.wait_for_log(f"port {probe_port}", deadline)
                return
        raise RuntimeError(f"{self.name}: sshd did not answer on {self.address}:22")

    def wait_for_log(self, text, deadline):
        """Wait until sshd has logged *text* (the probe's connection, say), so a test that
        compares the log before and after a command sees only what that command did; a
        RuntimeError at *deadline* (a time.monotonic() value)."""
        log = self.keys / f"{self.name}.sshd.log"
        while text not in log.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: sshd did not log {text!r}; its log: {log}")
            time.sleep(0.02)

    @property
    def init_pid(self):
        """The host's pid 1 (its sshd), seen from this machine."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return int(out.stdout.split()[0])

    @contextmanager
    def soft_open_files(self, soft):
        """While the block runs, every new login on the host gets *soft* as its soft limit
        of open files (its sshd's, which it inherits). The hard limit stays: lowering it
        could not be undone (root here lacks CAP_SYS_RESOURCE); see *open_files* instead."""
        pid = str(self.init_pid)
        before = subprocess.run(["prlimit", "--pid", pid, "--nofile", "--raw", "--noheadings",
                                 "--output=SOFT"], capture_output=True, text=True, check=True)
        subprocess.run(["prlimit", "--pid", pid, f"--nofile={soft}:"], check=True)
        try:
            yield
        finally:
            subprocess.run(["prlimit", "--pid", pid, f"--nofile={before.stdout.strip()}:"], check=True)

    def crash(self):
        """Kill the host and every process on it at once."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def run(self, command):
        """Run *command* (a shell string) inside the host's namespaces; returns stdout."""
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-n", "-m", "-u", "-p", "sh", "-c", command],
            capture_output=True, text=True, check=True).stdout

    def processes(self):
        """The live processes on the host, but its sshd and this look itself: ``pid args``."""
        lines = self.run("ps -eo pid=,stat=,args=").splitlines()
        return [line.strip() for line in lines
                if line.split()[1][0] != "Z" and "sshd" not in line
                and "ps -eo" not in line and not line.split()[0] == "1"]

    def screens(self):
        """The screen sessions on the host (any user), as ``screen -ls`` names them."""
        out = self.run("ls /run/screen/S-*/ 2>/dev/null || true")
        return [name for name in out.split() if "." in name]


class FakeHosts:
    """
    A set of fake hosts and the client key that logs into them as root.

    ``hosts[i]`` is host i+1. Use as a context manager: every host is crashed at
    the end, so nothing they ran is left on the machine.
    """

    def __init__(self, count, first=1, network=None, open_files=None, gpus=0, overlays=None):
        self.keys = Path(tempfile.mkdtemp(prefix="fakehosts-"))
        os.makedirs("/run/sshd", exist_ok=True)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.keys / key)],
                           check=True)
        shutil.copy(self.keys / "client_key.pub", self.keys / "authorized_keys")
        # Users other than root log in with the same key: sshd reads it as them.
        os.chmod(self.keys, 0o755)
        os.chmod(self.keys / "authorized_keys", 0o644)
        self.client_key = self.keys / "client_key"
        self.known_hosts = self.keys / "known_hosts"  # for the inventories: never the user's
        self.hosts = [FakeHost(first + i, self.keys, network, open_files, gpus, overlays)
                      for i in range(count)]

    def start(self):
        for host in self.hosts:
            host.start()
        return self

    def stop(self):
        for host in self.hosts:
            host.crash()
        shutil.rmtree(self.keys, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
