"""
Engines in a Slurm allocation, measured on a real Slurm (`tests.slurmhosts`: slurmctld on the
first fake host, the login node, a slurmd on each of the next four): from ``fab cluster.up`` to
every engine of a 4-node allocation registered, and ``fab cluster.down`` until the job left the
queue and no cluster process is left; beside it, ipyparallel's own Slurm launcher
(``Cluster(engines="slurm")``, what ``ipcluster start --engines=slurm`` runs) starting as many
engines on the same Slurm, and stopping them. The rounds alternate which goes first.

"Registered" is read the same way for both, from the controller's own log: the time of its
last ``Engine Connected`` line, from the start of the command. "Returned" is when the
command gave the prompt back: ``fab cluster.up`` also waits for Jupyter to answer, which
ipcluster does not start.
"""

import glob
import os
import re
import sys
import time
from datetime import datetime

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


CONNECTED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*engine::Engine Connected: \d+$", re.M)


def registered_after(log_text, start, count=ENGINES):
    """Seconds from *start* (a time.time()) to the *count*-th engine connected after it, as the
    controller's log (local time, to the millisecond) says; None if fewer connected."""
    times = sorted(stamp for stamp in (
        datetime.strptime(found, "%Y-%m-%d %H:%M:%S.%f").timestamp() for found in CONNECTED.findall(log_text))
        if stamp >= start - 0.001)
    return times[count - 1] - start if len(times) >= count else None


def _registered(log_path, start):
    with open(log_path) as log:
        seconds = registered_after(log.read(), start)
    if seconds is None:
        raise methods.BenchError(f"fewer than {ENGINES} engines connected in {log_path}")
    return seconds


def fab_round(fake_hosts, folder, slurm):
    """``(registered, returned, down)`` seconds of this project on a 4-node allocation."""
    hosts = (f"[master]\n{fake_hosts.hosts[0].address}\n\n[engines:children]\nalloc\n\n[alloc]\n\n"
             f"[alloc:vars]\nslurm_nodes={ENGINES}\nslurm_time=10\n")
    inventory = methods.write_inventory(folder / "fab-slurm", hosts, fake_hosts)
    key = fake_hosts.client_key
    start = time.time()
    up = methods.timed(lambda: methods.fab_ok(inventory, key, "cluster.up"))[0]
    _count_engines(ENGINES)  # every engine registered, as a client sees them
    logs = glob.glob(os.path.expanduser(f"~/.ipp-cluster/{methods.NAME}/*/{methods.NAME}-controller.log"))
    registered = _registered(max(logs, key=os.path.getmtime), start)

    def stop():
        methods.fab_ok(inventory, key, "cluster.down")
        _queue_empty(slurm)
        methods.wait_until_clean("fab cluster.down")
    return registered, up, methods.timed(stop)[0]


def ipcluster_round(slurm, folder):
    """``(registered, returned, down)`` seconds of ipyparallel's Slurm launcher, as many engines
    on the same Slurm."""
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
        return _registered(cluster.controller.output_file, begun)  # before the stop removes it

    def stop():
        cluster.stop_cluster_sync()
        _queue_empty(slurm)
        methods.wait_until_clean("ipcluster stop")
    here = os.getcwd()
    os.chdir(folder)  # where the launcher writes its batch script (its work_dir is always ".")
    try:
        begun = time.time()
        up, registered = methods.timed(start)
        return registered, up, methods.timed(stop)[0]
    finally:
        os.chdir(here)


def measure(fake_hosts, folder, rounds, say):
    """``{method: {"up": [s...], "down": [s...]}}`` over *rounds* rounds, on a Slurm of the
    fake hosts' four last as nodes."""
    reason = why_not_available()
    if reason:
        raise methods.BenchError(reason)
    samples = {method: {"registered": [], "up": [], "down": []} for method in ("fab", "ipcluster")}
    with FakeSlurm(fake_hosts, nodes=(2, 3, 4, 5)) as slurm:
        for round_ in range(rounds):
            order = ["fab", "ipcluster"][::1 if round_ % 2 == 0 else -1]
            for method in order:
                registered, up, down = (fab_round(fake_hosts, folder, slurm) if method == "fab"
                                        else ipcluster_round(slurm, folder))
                for name, seconds in (("registered", registered), ("up", up), ("down", down)):
                    samples[method][name].append(seconds)
                say(f"round {round_ + 1}/{rounds}  {method:<10} registered {registered:6.2f} s  "
                    f"returned {up:6.2f} s  down {down:6.2f} s")
    return samples


def slurm_table(samples):
    """A row per method: up (every engine registered; the command returned), down, and this
    project's as a multiple of ipcluster's."""
    ours, theirs = samples["fab"], samples["ipcluster"]
    columns = ("registered", "up", "down")
    rows = [["`fab cluster.up` / `cluster.down` (controller, Jupyter, 4-node job)",
             *(cell(ours[name]) for name in columns)],
            ["`ipcluster start --engines=slurm` / stop (controller, 4-task job)",
             *(cell(theirs[name]) for name in columns)],
            ["fab / ipcluster", *(f"{median(ours[name]) / median(theirs[name]):.2f}" for name in columns)]]
    return table([f"{ENGINES} engines in a Slurm allocation", "up: every engine registered",
                  "up: the command returned", "down: queue empty, nothing left"], rows)
