"""
Tasks for the whole cluster: the master first, then the engines on every engine host.
"""

from fabric import task
from invoke import Collection

from . import engines, lifecycle, master, operate, report
from .context import fleet, load


def _up(c, inventory):
    with fleet(c, inventory) as fleet_:
        unfit, cores = lifecycle.preflight(fleet_, inventory)
        if inventory.master.name in unfit:
            report.fail_if(report.lines(unfit))
        started = master.bring_up(fleet_, inventory, inventory.master)
        # Engines of an earlier controller cannot talk to a new one: restart them.
        fresh_controller = started.facts.get("controller") == "started"
        fit = tuple(host for host in inventory.engines if host.name not in unfit)
        problems = report.lines(unfit) + engines.bring_up(
            fleet_, inventory, fit, restart=fresh_controller, jupyter=True, cores=cores,
            master_result=started)
    print(f"Jupyter: {report.jupyter_url(inventory.settings.jupyter_port, started.facts['token'])}")
    report.fail_if(problems)


def _down(c, inventory):
    with fleet(c, inventory) as fleet_:
        results = lifecycle.stop_all(fleet_, inventory)
    report.results_table("cluster stopped", results, [
        ("engines left", "left_engine"), ("controller left", "left_controller"),
        ("jupyter left", "left_jupyter")])
    report.fail_if(report.failures(results))


@task
def up(c):
    """Start the master, then the engines on every engine host; wait until all registered."""
    _up(c, load())


@task
def down(c):
    """Stop engines, controller and Jupyter: no process or screen of the cluster is left."""
    _down(c, load())


@task
def restart(c):
    """Stop the whole cluster, then bring it up again."""
    inventory = load()
    _down(c, inventory)
    _up(c, inventory)


@task
def status(c):
    """Show a row per host (reachable, sessions, engines); exit 0 only if all is as wanted."""
    inventory = load()
    with fleet(c, inventory) as fleet_:
        rows = lifecycle.read_status(fleet_, inventory).rows
    report.status_and_exit("cluster", rows)


ns = Collection("cluster", up, down, restart, status, operate.run, operate.info, operate.check,
                operate.logs, operate.tunnel, operate.install)
