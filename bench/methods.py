"""
The timed things: three ways to bring the same engines up and down, and the
control-path tasks of ``fab`` on many hosts.

Every method's ``up`` returns when all its engines have registered with the
controller, and its ``down`` returns when no cluster process is left on the
machine (and so on any fake host: they share it), so the three are timed to
the same finish line.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).parent / "fab"
CLUSTER_WORDS = ("ipyparallel", "ipengine", "ipcontroller", "jupyter")
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
    """Command lines of the cluster programs running on this machine, this one aside."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
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


def timed(step):
    """Run *step*; returns (seconds, what it returned)."""
    start = time.perf_counter()
    value = step()
    return time.perf_counter() - start, value


def write_inventory(folder, hosts, fake_hosts, **settings):
    """An inventory folder for the fake hosts, with cluster name and profile ``ippbench``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts").write_text(hosts)
    settings = dict(CLUSTER_ENV=sys.prefix, CLUSTER_NAME=NAME, IPP_PROFILE=NAME,
                    JUPYTER_PORT=18988, KNOWN_HOSTS=fake_hosts.known_hosts, **settings)
    (folder / "cluster.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return folder


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


def control_path(fake_hosts, folder, hosts, task, parallel):
    """Seconds of one ``fab TASK`` on the first *hosts* fake hosts (every one an engine host)."""
    chosen = fake_hosts.hosts[:hosts]
    text = f"[master]\n{chosen[0].address}\n\n[engines]\n" + "".join(
        f"{host.address} engines=1\n" for host in chosen)
    inventory = write_inventory(folder / f"control-{hosts}-{parallel}", text, fake_hosts,
                                PARALLEL=parallel)
    seconds, result = timed(lambda: fab(inventory, fake_hosts.client_key, *task))
    if "unreachable" in result.stdout + result.stderr or result.returncode not in (0, 1):
        raise BenchError(f"fab {' '.join(task)} on {hosts} hosts:\n{result.stdout}{result.stderr}")
    return seconds


def fab_list():
    """Seconds of ``fab -l``: the import of the fabfile and of every task module."""
    return timed(lambda: subprocess.run([str(FAB), "-l"], cwd=PROJECT, check=True,
                                        capture_output=True))[0]
