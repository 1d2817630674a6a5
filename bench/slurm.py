"""
Engines in a Slurm allocation, measured on a real Slurm (`tests.slurmhosts`: slurmctld on the
first fake host, the login node, a slurmd on each of the next four): from ``fab cluster.up`` to
every engine of a 4-node allocation registered, and ``fab cluster.down`` until the job left the
queue and no cluster process is left; beside it, ipyparallel's own Slurm launcher
(``Cluster(engines="slurm")``, what ``ipcluster start --engines=slurm`` runs) starting as many
engines on the same Slurm, and stopping them. The rounds alternate which goes first.
"""

import os
import sys
import time

from tests.slurmhosts import FakeSlurm, why_not_available

from . import methods
from .report import cell, median, table

ENGINES = 4  # one per node of the allocation: a node's default share is one CPU


def _queue_empty(slurm, timeout=120):
    deadline = time.monotonic() + timeout
    while slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    if slurm.jobs():
        raise methods.BenchError(f"jobs still queued after {timeout} s: {slurm.jobs()}")


def _count_engines(expected):
    methods.ask_cluster(f"c.wait_for_engines({expected}, timeout=60)\nprint(len(c.ids))")


def fab_round(fake_hosts, folder, slurm):
    """``(up, down)`` seconds of this project on a 4-node allocation."""
    hosts = (f"[master]\n{fake_hosts.hosts[0].address}\n\n[engines:children]\nalloc\n\n[alloc]\n\n"
             f"[alloc:vars]\nslurm_nodes={ENGINES}\nslurm_time=10\n")
    inventory = methods.write_inventory(folder / "fab-slurm", hosts, fake_hosts)
    key = fake_hosts.client_key
    up = methods.timed(lambda: methods.fab_ok(inventory, key, "cluster.up"))[0]
    _count_engines(ENGINES)  # every engine registered, as a client sees them

    def stop():
        methods.fab_ok(inventory, key, "cluster.down")
        _queue_empty(slurm)
        methods.wait_until_clean("fab cluster.down")
    return up, methods.timed(stop)[0]


def ipcluster_round(slurm, folder):
    """``(up, down)`` seconds of ipyparallel's Slurm launcher, as many engines on the same Slurm."""
    import ipyparallel as ipp

    os.environ["SLURM_CONF"] = slurm.conf  # sbatch and scancel run here, as on the login node
    cluster = ipp.Cluster(engines="slurm", n=ENGINES, profile=f"{methods.NAME}-slurm",
                          controller_ip="127.0.0.1")
    cluster.config.SlurmEngineSetLauncher.environment = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"}

    def start():
        client = cluster.start_and_connect_sync()
        try:
            client.wait_for_engines(ENGINES, timeout=600)
        finally:
            client.close()

    def stop():
        cluster.stop_cluster_sync()
        _queue_empty(slurm)
        methods.wait_until_clean("ipcluster stop")
    here = os.getcwd()
    os.chdir(folder)  # where the launcher writes its batch script (its work_dir is always ".")
    try:
        return methods.timed(start)[0], methods.timed(stop)[0]
    finally:
        os.chdir(here)


def measure(fake_hosts, folder, rounds, say):
    """``{method: {"up": [s...], "down": [s...]}}`` over *rounds* rounds, on a Slurm of the
    fake hosts' four last as nodes."""
    reason = why_not_available()
    if reason:
        raise methods.BenchError(reason)
    samples = {"fab": {"up": [], "down": []}, "ipcluster": {"up": [], "down": []}}
    with FakeSlurm(fake_hosts, nodes=(2, 3, 4, 5)) as slurm:
        for round_ in range(rounds):
            order = ["fab", "ipcluster"][::1 if round_ % 2 == 0 else -1]
            for method in order:
                up, down = (fab_round(fake_hosts, folder, slurm) if method == "fab"
                            else ipcluster_round(slurm, folder))
                samples[method]["up"].append(up)
                samples[method]["down"].append(down)
                say(f"round {round_ + 1}/{rounds}  {method:<10} up {up:6.2f} s  down {down:6.2f} s")
    return samples


def slurm_table(samples):
    """A row per method: up, down, and this project's up as a multiple of ipcluster's."""
    ours, theirs = samples["fab"], samples["ipcluster"]
    rows = [["`fab cluster.up` / `cluster.down` (controller, Jupyter, 4-node job)", cell(ours["up"]),
             cell(ours["down"])],
            ["`ipcluster start --engines=slurm` / stop (controller, 4-task job)", cell(theirs["up"]),
             cell(theirs["down"])],
            ["fab / ipcluster", f"{median(ours['up']) / median(theirs['up']):.2f}",
             f"{median(ours['down']) / median(theirs['down']):.2f}"]]
    return table([f"{ENGINES} engines in a Slurm allocation", "up: all registered", "down: queue empty,"
                  " nothing left"], rows)
