"""
Tasks for the engines: ``ipengine`` processes on every engine host of the inventory.
"""

from fabric import task
from invoke import Collection

from .context import HOSTS_HELP, JSON_HELP, choose, fleet, load, reads_inventory, show_status
from .show import report
from .show.progress import watching
from .steps import lifecycle


def bring_up(fleet_, inventory, hosts=None, **options):
    """
    Start the missing engines on every engine host (or *hosts*), show the engines
    table and return the `tasks.steps.lifecycle.EnginesUp`; *options* go to
    `tasks.steps.lifecycle.engines_up`.
    """
    hosts = inventory.engines if hosts is None else hosts
    up = lifecycle.engines_up(fleet_, inventory, hosts, watch=watching, **options)
    show(up, inventory)
    return up


def show(up, inventory):
    """Print the engines table of an `tasks.steps.lifecycle.EnginesUp`, in the inventory's order."""
    if up.started or up.skipped:
        report.engines_table(up, [host.name for host in inventory.engines])


def bring_down(fleet_, inventory, hosts):
    """Stop every engine on *hosts*, show the table and return the problems."""
    results = lifecycle.stop_engines(fleet_, inventory, hosts)
    report.results_table("engines stopped", results, [("engines left", "left_engine")])
    return report.failures(results)


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def start(c, hosts=""):
    """Start the engines missing on each engine host (or those named); return when all have registered."""
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_up(fleet_, inventory, chosen).problems)


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def stop(c, hosts=""):
    """Stop every engine on every engine host (or those named: a drain); no engine process is left."""
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_down(fleet_, inventory, chosen))


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def restart(c, hosts=""):
    """Stop the engines (of every engine host, or those named), start them again and return
    when they have registered; other hosts' engines are untouched."""
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_down(fleet_, inventory, chosen)
                       + bring_up(fleet_, inventory, chosen).problems)


@task(help={"hosts": HOSTS_HELP, "json": JSON_HELP})
@reads_inventory
def status(c, hosts="", json=False):
    """Show the engines running and registered per host; exit 0 only if all are."""
    show_status(c, "engines.status", "the engines are stopped: none runs on any engine host"
                " (fab engines.start starts them)", hosts, json, master=False)


ns = Collection("engines", start, stop, restart, status)
