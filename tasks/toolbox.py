"""
Tasks for operating a running cluster: run a command everywhere, read facts and
logs, check the hosts before a start, reach Jupyter through a tunnel.

They are mounted in the ``cluster`` namespace.
"""

import os
import socket
import sys
import tempfile
import time

from fabric import task
from invoke.exceptions import Exit

from . import __version__
from .show import documents, report
from .ssh import forward
from .steps import allocations, client, environment, lifecycle, operations, preflight
from .context import EXIT, HOSTS_HELP, JSON_HELP, LOGIN_NODE, choose, load, reads_inventory, session, whole_number


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

    Each Slurm allocation's job is checked by Slurm itself (sbatch --test-only on the master:
    partition, account, time, nodes), which submits nothing.
    """
    inventory = load()
    with session(c, inventory) as cluster:  # each host as the inventory names it
        results = preflight.read_facts(cluster.fleet, cluster.written, cluster.written.hosts)
        refused = allocations.check(cluster.fleet, cluster.written)
    problems = preflight.check_problems(inventory, results)
    for name, why in refused.items():
        problems.setdefault(name, []).append(why)
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


def free_port(preferred, taken=()):
    """*preferred* if nothing listens there on 127.0.0.1 (and not *taken*), else the next free port."""
    for port in range(preferred, min(preferred + 100, 65536)):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise Exit(f"error: no free local port from {preferred} to {preferred + 99}", code=1)


@task(help={"port": "the local port, 1 to 65535 (default: JUPYTER_PORT, or the next free one)"})
@reads_inventory
def tunnel(c, port=""):
    """Forward a local port to Jupyter on the master, print the URL with its token, hold until Ctrl-C."""
    port = whole_number("port", port, 1, 65535) if port != "" else 0
    inventory = load()
    remote_port = inventory.settings.jupyter_port
    with session(c, inventory) as cluster:
        fleet_, inventory, master = cluster.fleet, cluster.inventory, cluster.master
        result = lifecycle.read_token(fleet_, inventory)
        report.fail_if(report.failures({master.name: result}))
        token = result.facts["token"]
        if master.is_local:
            print(f"the master is this machine: {report.jupyter_url(remote_port, token)}")
            print(f"Dashboard: {report.dashboard_url(remote_port, token)}")
            return
        local_port = port or free_port(remote_port)

        def guard(remote):  # before each connection: the master's port is still our Jupyter's
            return operations.jupyter_port_problem(fleet_, inventory, remote)
        with _forwards(fleet_.connection(master), inventory.settings, "127.0.0.1",
                       {local_port: remote_port}, guard) as forwards:
            print(f"Jupyter: {report.jupyter_url(local_port, token)}", flush=True)
            print(f"Dashboard: {report.dashboard_url(local_port, token)}", flush=True)
            _hold(forwards, "forwarding; press Ctrl-C to stop")


#: Seconds between SSH keepalives while ports are forwarded: a dead connection must end
#: the hold, not leave forwards that go nowhere.
KEEPALIVE = 15


def _forwards(connection, settings, remote_host, ports, guard=None):
    """`forward.Forwards` of *ports* through *connection*, each checked end to end, or exit 1
    (*guard*: see `forward.Forwards`)."""
    connection.open()  # open since the step before; this only makes sure
    connection.transport.set_keepalive(KEEPALIVE)
    forwards = None
    try:
        forwards = forward.Forwards(connection.transport, remote_host, ports,
                                    settings.connect_timeout, warn=_warn, guard=guard)
        forwards.check(ports.values())
    except forward.ForwardError as error:
        if forwards is not None:
            forwards.close()
        raise Exit(f"error: {error}", code=1) from None
    return forwards


def _warn(line):
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _hold(forwards, message):
    """Print *message*, then hold *forwards* until Ctrl-C (exit 0) or until they fail (exit 1)."""
    print(message, flush=True)
    try:
        while forwards.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    raise Exit(f"error: {forwards.problem}; the forwards are gone: run the task again", code=1)


@task
@reads_inventory
def connect(c):
    """Bring the controller's client file here (0600) and print how ipp.Client uses it through SSH."""
    inventory = load()
    with session(c, inventory) as cluster:
        fleet_, inventory, master = cluster.fleet, cluster.inventory, cluster.master
        result = operations.read_client_file(fleet_, inventory)
        report.fail_if(report.failures({master.name: result}))
        data = client.decode(result.facts["client_file"])
        # ipyparallel's own tunnel takes one SSH hop: a job's node behind a login node takes
        # this project's forwards, as encryption does.
        if master.is_local or not (inventory.settings.encrypt or master.via):
            path = client.save(inventory.settings, data)
            through = () if master.is_local else client.server_of(fleet_.connection(master))
            _print_client(path, client.lines(path, *through))
        else:
            _hold_forwards(fleet_.connection(master), inventory.settings, data)


def _print_client(path, lines):
    print(f"# the cluster's client connection file is {path}; in Python:", flush=True)
    print("\n".join(lines), flush=True)


def _hold_forwards(connection, settings, data):
    """ENCRYPT=yes: forward a local port to each of the controller's, until Ctrl-C. The client
    file that points at them is removed when they end."""
    remote, local = client.remote_address(data), {}
    for name, port in client.ports(data).items():
        local[name] = free_port(port, taken=set(local.values()))
    remote_ports = {local[name]: port for name, port in client.ports(data).items()}
    with _forwards(connection, settings, remote, remote_ports) as forwards:
        path = client.save(settings, client.through_forwards(data, local))
        try:
            _print_client(path, client.lines(path))
            _hold(forwards, "# forwarding the controller's ports; press Ctrl-C to stop")
        finally:
            path.unlink(missing_ok=True)


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
