"""
Tasks for the whole cluster: the master first, then the engines on every engine host.
"""

from json import dumps

from fabric import task
from invoke import Collection
from invoke.exceptions import Exit

from . import access, engines, master, on_hosts
from .context import HOSTS_HELP, JSON_HELP, LOGIN_NODE, load, reads_inventory, session, show_status
from .show import report
from .show.progress import watching
from .steps import lifecycle, preflight
from .steps.slurm import allocations, keeper


def _up(c, inventory):
    done = "nothing had started"
    allocated = allocations.AllocationsUp()
    try:
        with session(c, inventory) as cluster:
            fleet_ = cluster.fleet  # until the job runs, inventory is as written: the login node
            checked = preflight.preflight(fleet_, inventory)
            unfit = checked.problems
            if inventory.master.name in unfit:
                report.fail_if(report.lines(unfit))
            refused = allocations.check(fleet_, inventory)
            report.fail_if([f"{name}: {why}" for name, why in refused.items()])
            in_job = inventory.master_allocation
            if in_job:  # the controller's node first: the first of its job's
                done = f"the job of {in_job.name}, where the controller runs, was submitted"
                _master_job(cluster, in_job, allocated)
            inventory = cluster.inventory
            done = f"the master ({inventory.master.name}) was starting"
            started = lifecycle.start_master(fleet_, inventory, inventory.master,
                                             peers=checked.peers, planned=checked.planned)
            if not started.ok:
                master.show(started, inventory.master)
                report.fail_if(report.failures({inventory.master.name: started}))
            done = "the master had started and the engines were starting"
            # Engines of an earlier controller cannot talk to a new one: restart them.
            fresh_controller = started.facts.get("controller") == "started"
            if in_job and (fresh_controller or allocated.jobs[in_job.name].held):
                # its engines start now that the controller runs (anew, for a new one)
                allocated.problems += [f"{name}: {why}" for name, why in
                                       allocations.restart(fleet_, inventory, [in_job]).items()]
            others = [a for a in inventory.allocations if not a.master and a.jobs[0]]  # MIN 0: none yet
            if others:  # now: the jobs start while Jupyter does
                engine_file = None if inventory.settings.shared_home else \
                    lifecycle.read_engine_file(fleet_, inventory, started)
                allocations.submit(fleet_, inventory, others, allocated,
                                   renew=fresh_controller, engine_file=engine_file, say=engines.say)
                done = "the allocations' jobs were submitted"
                # it tops each up to its slurm_jobs, and renews them while no fab runs
                allocated.problems += keeper.start(fleet_, inventory, [a for a in others if a in allocated.chosen])
                allocations.wait_running(fleet_, inventory, allocated, say=engines.say)
            fit = tuple(host for host in inventory.engines if host.name not in unfit)
            up = lifecycle.engines_up(fleet_, inventory, fit, restart=fresh_controller,
                                      planned=checked.planned, master_result=started, watch=watching,
                                      skipped=checked.skipped(inventory.engines),
                                      also=allocated.expected)  # one wait for all of them
            if inventory.allocations:
                master.show(started, inventory.master)
                engines.show(up, inventory)
                engines.wait_allocations(fleet_, inventory, allocated, up.registered)
    except KeyboardInterrupt:
        raise Exit(f"interrupted: {done}; fab cluster.down stops what started"
                   + engines.cancel_submitted(c, inventory, allocated), code=130) from None
    if not inventory.allocations:
        master.show(started, inventory.master)
        engines.show(up, inventory)
    if started.ok:
        print_where(inventory, started.facts["token"])
    report.fail_if(report.lines(unfit) + up.problems + allocated.problems)


def print_where(inventory, token):
    """
    Where to open Jupyter and the dashboard: their URLs when the master is this machine;
    else the way here, `fab cluster.tunnel`, which prints the URLs of the local port it
    forwards (JUPYTER_PORT may be taken here, and the master's loopback is not this one's).
    """
    master, port = inventory.master, inventory.settings.jupyter_port
    if master.is_local:
        print(f"Jupyter: {report.jupyter_url(port, token)}")
        print(f"Dashboard: {report.dashboard_url(port, token)}")
        return
    through = f" through {master.via.name}" if master.via else ""
    print(f"Jupyter and the dashboard listen on {master.name}'s 127.0.0.1:{port} only: "
          f"fab cluster.tunnel brings them here{through} and prints their URLs")


def _master_job(cluster, allocation, allocated):
    """Submit (or keep) the job of *allocation*, whose first node runs the controller and
    Jupyter, and wait until it runs (the first use of *cluster*'s master), or exit 1."""
    allocations.submit(cluster.fleet, cluster.written, [allocation], allocated, say=engines.say)
    allocations.wait_running(cluster.fleet, cluster.written, allocated, say=engines.say)
    report.fail_if(allocated.problems)
    engines.say(f"{allocation.name}: the controller and Jupyter start on {cluster.master.name}, "
                f"the first node of job {allocated.jobs[allocation.name].id}")


def _down(c, inventory):
    with session(c, inventory, if_no_job=LOGIN_NODE) as cluster:
        inventory = cluster.inventory
        results = lifecycle.stop_all(cluster.fleet, inventory)
    master_result = results[inventory.slurm_host.name]
    ended = allocations.cancelled(master_result) if master_result.ok else {}
    problems = engines.show_cancelled({**dict.fromkeys((a.name for a in inventory.allocations),
                                                       (None, None)), **ended})
    report.results_table("cluster stopped", results, [
        ("engines left", "left_engine"), ("controller left", "left_controller"),
        ("jupyter left", "left_jupyter")])
    report.fail_if(problems + report.failures(results))


@task
@reads_inventory
def up(c):
    """Start the master, then the engines on every engine host; wait until all registered.

    A Slurm allocation of the inventory is one job: Slurm is asked first whether it would
    run it (nothing starts if not), then it is submitted (a job of this cluster's that is
    queued or runs is kept) and waited for, then its engines. Ctrl-C cancels what it submitted.
    Then the keeper on the master submits the others of slurm_jobs=N, and renews each job
    before its end while no fab runs.
    """
    _up(c, load())


@task
@reads_inventory
def down(c):
    """Stop engines, controller and Jupyter: no process or screen of the cluster is left.

    The jobs of the Slurm allocations end (a queued one is cancelled): only those this
    cluster submitted, checked against their user and name.
    """
    _down(c, load())


@task
@reads_inventory
def restart(c):
    """Stop the whole cluster, then bring it up again."""
    inventory = load()
    try:
        _down(c, inventory)
    except KeyboardInterrupt:
        raise Exit("interrupted: the cluster was stopping; fab cluster.down stops the rest",
                   code=130) from None
    _up(c, inventory)


@task(help={"json": "one JSON document on stdout instead of the table"})
@reads_inventory
def hosts(c, json=False):
    """Show the inventory as resolved, a row per host, without contacting any host.

    Roles, the address SSH connects to, port, user, key, engines, threads, gpus and setup;
    with --json, one JSON document: this project's ansible-inventory --list.
    """
    listing = load().listing()
    if json:
        print(dumps(listing, indent=1))
    else:
        report.hosts_table(listing)


@task(help={"hosts": HOSTS_HELP, "json": JSON_HELP})
@reads_inventory
def status(c, hosts="", json=False):
    """Show a row per host (reachable, sessions, engines); exit 0 only if all is as wanted."""
    show_status(c, "cluster.status", "the cluster {name!r} is stopped: nothing of it runs on any"
                " host (fab cluster.up starts it)", hosts, json)


ns = Collection("cluster", up, down, restart, status, hosts, on_hosts.run, on_hosts.info, on_hosts.check,
                on_hosts.logs, access.tunnel, access.connect, on_hosts.install)
