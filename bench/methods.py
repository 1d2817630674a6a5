"""
The timed things: three ways to bring the same engines up and down, and the
control-path tasks of ``fab`` on many hosts.

Every method's ``up`` returns when all its engines have registered with the
controller, and its ``down`` returns when no cluster process is left on the
machine (and so on any fake host: they share it), so the three are timed to
the same finish line.
"""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests import sshhosts

PROJECT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).parent / "fab"
CLUSTER_WORDS = ("ipyparallel", "ipengine", "ipcontroller", "ipp_remote", "jupyter")
NAME = "ippbench"  # cluster name and profile: the user's own clusters are not touched


class BenchError(RuntimeError):
    """A timed step did not do what it should; the run stops and says so."""


@dataclass(frozen=True)
class Layout:
    """A master host and engine hosts with ``per_host`` engines each."""

    master: object
    engine_hosts: tuple
    per_host: int

    @property
    def engines(self):
        return len(self.engine_hosts) * self.per_host

    @property
    def label(self):
        return f"{len(self.engine_hosts)} x {self.per_host}"


def cluster_processes():
    """Command lines of the cluster programs running on this machine, this one and those
    that started it aside (a pytest whose command line names a test file ``..._jupyter_...``)."""
    found, ours = [], {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as file:
                line = file.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(word in line for word in CLUSTER_WORDS):
            found.append(f"{entry.name} {line}")
    return found


def wait_until_clean(what, timeout=180):
    """Block until no cluster process is left; a BenchError names any that stay."""
    deadline = time.monotonic() + timeout
    while (left := cluster_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        raise BenchError(f"{what}: still running after {timeout} s: {left}")


def end_leftovers(timeout=30):
    """End what a measurement that failed part way left of this benchmark's cluster (its
    processes carry ``IPP_CLUSTER_TAG=ippbench/ROLE``; the fake hosts run on this machine),
    then wait until no cluster process is left, so that the next starts clean."""
    for process in psutil.process_iter():
        try:
            if process.environ().get("IPP_CLUSTER_TAG", "").startswith(f"{NAME}/"):
                process.kill()
        except psutil.Error:
            pass
    wait_until_clean("ending what a failed measurement left", timeout)


def timed(step):
    """Run *step*; returns (seconds, what it returned)."""
    start = time.perf_counter()
    value = step()
    return time.perf_counter() - start, value


def write_inventory(folder, hosts, fake_hosts, **settings):
    """An inventory folder for the fake hosts, with cluster name and profile ``ippbench``."""
    return sshhosts.write_inventory(folder, hosts, **{
        "CLUSTER_ENV": sys.prefix, "CLUSTER_NAME": NAME, "IPP_PROFILE": NAME, "JUPYTER_PORT": 18988,
        "KNOWN_HOSTS": fake_hosts.known_hosts, **settings})


def fab(inventory, key, *args, timeout=900):
    """Run ``fab ARGS`` as a user would; returns the CompletedProcess."""
    env = dict(os.environ, CLUSTER_INVENTORY=str(inventory))
    return subprocess.run([str(FAB), "-i", str(key), *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def fab_ok(inventory, key, *args):
    """`fab`, where a non-zero exit is a BenchError with fab's stderr."""
    result = fab(inventory, key, *args)
    if result.returncode != 0:
        raise BenchError(f"fab {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def ask_cluster(code, timeout=120, connect=20):
    """Run *code* after ``c = ipp.Client(...)`` (waiting *connect* s for the controller) of
    the cluster on the fake hosts, in a Python of its own; its last line, as JSON."""
    head = (f"import ipyparallel as ipp, json, os, socket, time\n"
            f"c = ipp.Client(profile={NAME!r}, timeout={connect})\n")
    env = {k: v for k, v in os.environ.items() if k != "IPYTHONDIR"}  # the hosts' profile: ~/.ipython
    out = subprocess.run([sys.executable, "-c", head + code], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if out.returncode != 0:
        raise BenchError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


class FabCluster:
    """This project: ``fab cluster.up`` and ``fab cluster.down``."""

    label = "fab"

    def __init__(self, fake_hosts, folder):
        self.fake_hosts, self.folder = fake_hosts, folder

    def up(self, layout):
        hosts = f"[master]\n{layout.master.address}\n\n[engines]\n" + "".join(
            f"{host.address} engines={layout.per_host}\n" for host in layout.engine_hosts)
        self.inventory = write_inventory(self.folder / "fab", hosts, self.fake_hosts)
        return timed(lambda: fab_ok(self.inventory, self.fake_hosts.client_key, "cluster.up"))[0]

    def down(self):
        def stop():
            fab_ok(self.inventory, self.fake_hosts.client_key, "cluster.down")
            wait_until_clean("fab cluster.down")
        return timed(stop)[0]


class _IpyparallelCluster:
    """What ipyparallel's own `Cluster` methods share: start, wait for every engine, stop."""

    cluster = None

    def down(self):
        def stop():
            self.cluster.stop_cluster_sync()
            wait_until_clean(f"{self.label} stop")
        return timed(stop)[0]


class IpclusterSSH(_IpyparallelCluster):
    """ipyparallel's ``Cluster(engines="ssh")``: the controller here, on the master's address."""

    label = "ipcluster-ssh"

    def __init__(self, fake_hosts):
        self.fake_hosts = fake_hosts

    def up(self, layout):
        import ipyparallel as ipp

        ssh = ["-i", str(self.fake_hosts.client_key), "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR"]
        self.cluster = ipp.Cluster(engines="ssh", profile=f"{NAME}-ssh", n=layout.engines,
                                   controller_ip=layout.master.address)
        config = self.cluster.config
        config.SSHLauncher.ssh_args = ssh
        config.SSHLauncher.scp_args = ssh
        config.SSHLauncher.remote_python = sys.executable
        config.SSHEngineSetLauncher.engines = {
            f"root@{host.address}": layout.per_host for host in layout.engine_hosts}
        return timed(lambda: _start_and_wait(self.cluster, layout.engines))[0]


class LocalFloor(_IpyparallelCluster):
    """The floor: the same number of engines started here by ``Cluster(n=...)``, no SSH."""

    label = "floor"

    def up(self, layout):
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=layout.engines, profile=f"{NAME}-local")
        return timed(lambda: _start_and_wait(self.cluster, layout.engines))[0]


def _start_and_wait(cluster, engines):
    client = cluster.start_and_connect_sync()
    try:
        client.wait_for_engines(engines, timeout=600)
    finally:
        client.close()


def control_path(fake_hosts, folder, hosts, task, parallel, code):
    """Seconds of one ``fab TASK`` on the first *hosts* fake hosts (every one an engine host),
    which must exit with *code*."""
    chosen = fake_hosts.hosts[:hosts]
    text = f"[master]\n{chosen[0].address}\n\n[engines]\n" + "".join(
        f"{host.address} engines=1\n" for host in chosen)
    inventory = write_inventory(folder / f"control-{hosts}-{parallel}", text, fake_hosts,
                                PARALLEL=parallel)
    seconds, result = timed(lambda: fab(inventory, fake_hosts.client_key, *task))
    if "unreachable" in result.stdout + result.stderr or result.returncode != code:
        raise BenchError(f"fab {' '.join(task)} on {hosts} hosts:\n{result.stdout}{result.stderr}")
    return seconds


def fab_list():
    """Seconds of ``fab -l``: the import of the fabfile and of every task module."""
    return timed(lambda: subprocess.run([str(FAB), "-l"], cwd=PROJECT, check=True,
                                        capture_output=True))[0]


def ssh_floor(fake_hosts, hosts, at_once=32):
    """
    Seconds of OpenSSH's ``ssh HOST true`` on the first *hosts* fake hosts, *at_once* at a time:
    the logins alone, which on these hosts share this machine's cores. No tool that logs in
    to every host can be faster.
    """
    def login(host):
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(fake_hosts.client_key), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={fake_hosts.known_hosts}", "-o", "StrictHostKeyChecking=no",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{host.address}",
             "true"], capture_output=True, text=True, timeout=120)

    def all_logins():
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            failed = [r.stderr for r in pool.map(login, fake_hosts.hosts[:hosts]) if r.returncode]
        if failed:
            raise BenchError(f"ssh true on {hosts} hosts failed: {failed[0]}")
    return timed(all_logins)[0]


@contextmanager
def silent_hosts(count, first=1):
    """*count* hosts that accept TCP on port 22 and never say a word: 127.0.3.FIRST and up.
    Each binds as servers do (``SO_REUSEADDR``), so that a connection of a previous run
    still in TIME_WAIT on its port does not make the address "already in use"."""
    sockets = []
    try:
        for number in range(first, first + count):
            sockets.append(socket.create_server((f"127.0.3.{number}", 22), backlog=64))
        yield [f"127.0.3.{n}" for n in range(first, first + count)]
    finally:
        for listener in sockets:
            listener.close()


def peak_threads(fake_hosts, folder, hosts, total):
    """
    The most threads ``fab cluster.run true`` had at once, on the first *hosts* fake hosts
    and ``total - hosts`` silent ones (each waits its connect timeout), read from
    /proc/PID/status every 5 ms.
    """
    with silent_hosts(total - hosts) as silent:
        addresses = [host.address for host in fake_hosts.hosts[:hosts]] + silent
        text = f"[master]\n{addresses[0]}\n\n[engines]\n" + "".join(f"{a}\n" for a in addresses)
        inventory = write_inventory(folder / f"threads-{total}", text, fake_hosts, CONNECT_TIMEOUT=2)
        env = dict(os.environ, CLUSTER_INVENTORY=str(inventory))
        errors = folder / f"threads-{total}.stderr"  # a file: a pipe read at the end could fill
        with open(errors, "w") as stderr:
            process = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.run",
                                        "true"], cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=stderr)
        most = 0
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    most = max(most, next(int(line.split()[1]) for line in status
                                          if line.startswith("Threads:")))
            except (OSError, StopIteration):
                pass
            time.sleep(0.005)
        stderr = errors.read_text()
    unreachable = stderr.count("unreachable")
    if unreachable != total - hosts:
        raise BenchError(f"threads on {total} hosts: {unreachable} unreachable, expected "
                         f"{total - hosts}:\n{stderr}")
    return most
