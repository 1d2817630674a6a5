"""
Tasks that act on each host: run a command and read the screen sessions' logs (the
master where it runs: a job's node with ``slurm_master=yes``); read the hosts' facts
(``info``), check them before a start and install the cluster's environment (on the
hosts as the inventory names them: the login node, not a job's node).

They are mounted in the ``cluster`` namespace.
"""

import os
import tempfile

from fabric import task
from invoke.exceptions import Exit

from . import __version__
from .context import EXIT, HOSTS_HELP, JSON_HELP, LOGIN_NODE, choose, load, reads_inventory, session, whole_number
from .show import documents, report
from .steps import environment, operations, preflight, reachability
from .steps.slurm import allocations


def _print_outputs(results):
    for name, result in results.items():
        report.console.rule(f"[bold]{name}[/]", align="left")
        text = (result.stdout + result.stderr).rstrip()
        if text:
            report.console.out(text, highlight=False)
        if not result.ok:
            report.console.print(f"[red]{result.reason}[/]")


ROLE_HELP = "only this role: master or engines (default: every host)"


@task(help={"command": "the command to run on each host, with sh (whatever the login shell)",
            "role": ROLE_HELP, "hosts": HOSTS_HELP})
@reads_inventory
def run(c, command, role="", hosts=""):
    """Run a command with sh on every host (or a role, or named hosts), whatever the login shell."""
    inventory = load()
    choose(inventory, role, hosts)  # a bad option is said before any host is contacted
    with session(c, inventory, if_no_job=EXIT if role == "master" else LOGIN_NODE) as cluster:
        inventory = cluster.inventory
        results = operations.run_command(cluster.fleet, inventory, choose(inventory, role, hosts),
                                         command)
    _print_outputs(results)
    report.fail_if(report.failures(results))


@task(help={"role": ROLE_HELP, "hosts": HOSTS_HELP,
            "lines": "how many lines of each log, 1 to 100000 (default 20)"})
@reads_inventory
def logs(c, role="", hosts="", lines="20"):
    """Show the last lines of each screen session's log, under its host and session name."""
    lines = whole_number("lines", lines, 1, 100000)
    inventory = load()
    choose(inventory, role, hosts)  # a bad option is said before any host is contacted
    with session(c, inventory, if_no_job=EXIT if role == "master" else LOGIN_NODE) as cluster:
        inventory = cluster.inventory
        results = operations.read_logs(cluster.fleet, inventory, choose(inventory, role, hosts),
                                       role or None, lines)
    _print_outputs(results)
    report.fail_if(report.failures(results))


def _gib(kb):
    return f"{int(kb) / 1024 / 1024:.1f} GiB" if kb else ""


@task(help={"json": JSON_HELP})
@reads_inventory
def info(c, json=False):
    """One row per host: cores, GPUs, memory, load, users, and Python/ipyparallel in CLUSTER_ENV.

    The table's title and the JSON document (``version``) say this ipp-cluster's version.
    """
    inventory = load()
    with session(c, inventory) as cluster:  # each host as the inventory names it
        results = preflight.read_facts(cluster.fleet, cluster.written, cluster.written.hosts)
    if json:
        documents.dump(documents.info(results))
        report.fail_if(report.failures(results))
        return
    for result in results.values():
        result.facts["mem_total"] = _gib(result.facts.get("mem_total_kb"))
        result.facts["mem_available"] = _gib(result.facts.get("mem_available_kb"))
    report.results_table(f"hosts (ipp-cluster {__version__})", results, [
        ("cores", "cores"), ("gpus", "gpus"), ("memory", "mem_total"), ("available", "mem_available"),
        ("load", "load"), ("users", "users"), ("python", "python"),
        ("ipyparallel", "ipyparallel")])
    report.fail_if(report.failures(results))


@task(help={"json": JSON_HELP})
@reads_inventory
def check(c, json=False):
    """Check every host before a start: reachable, screen, CLUSTER_ENV, same versions as the master.

    While the controller runs, each engine host connects to each of its ports (a few
    seconds' timeout) and is named with those it does not reach. Each Slurm allocation's job
    is checked by Slurm itself (sbatch --test-only on the master: partition, account, time,
    nodes), which submits nothing.
    """
    inventory = load()
    with session(c, inventory) as cluster:  # each host as the inventory names it
        results = preflight.read_facts(cluster.fleet, cluster.written, cluster.written.hosts)
        refused = allocations.check(cluster.fleet, cluster.written)
        unreached = reachability.check(cluster.fleet, cluster.written, results)
    problems = preflight.check_problems(inventory, results)
    for name, why in refused.items():
        problems.setdefault(name, []).append(why)
    for name, said in unreached.items():
        problems.setdefault(name, []).extend(said)
    if json:
        documents.dump(documents.check(results, problems))
        report.fail_if(report.lines(problems))
        return
    report.results_table("check", results, [("python", "python"), ("ipyparallel", "ipyparallel")],
                         problems)
    report.fail_if(report.lines(problems))
    print(f"ready: {len(results)} hosts" + (f", {len(inventory.allocations)} Slurm allocation"
                                              f"{'s' * (len(inventory.allocations) > 1)}"
                                              if inventory.allocations else ""))


@task(help={"wheelhouse": "a folder of wheels to install from, with no index (offline clusters)",
            "python": "the Python that creates CLUSTER_ENV where it is missing (default python3)"})
@reads_inventory
def install(c, wheelhouse="", python="python3"):
    """Create CLUSTER_ENV on every host that lacks it and install the cluster's pinned packages."""
    inventory = load()
    settings = inventory.settings
    if not settings.cluster_env:
        raise Exit(f"error: {inventory.folder}/cluster.env: set CLUSTER_ENV, the environment "
                   "to create on every host", code=2)
    if wheelhouse and not os.path.isdir(wheelhouse):
        raise Exit(f"error: --wheelhouse={wheelhouse} is not a folder", code=2)
    with session(c, inventory) as cluster, tempfile.TemporaryDirectory() as folder:
        archive = environment.pack(wheelhouse, folder) if wheelhouse else None
        put, results = operations.install(cluster.fleet, cluster.written, python, archive)  # as named
    report.results_table("install", results, [("created", "created"), ("ipyparallel", "ipyparallel")])
    report.fail_if(report.failures(put) + report.failures(results))
