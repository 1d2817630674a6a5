"""
Tasks for the master: the ipyparallel controller and the Jupyter server.

``fab master.start`` uses the inventory's master; the root tasks
``fab -H HOST start-master`` / ``stop-master`` act on the host given with ``-H``.
"""

from fabric import task
from invoke import Collection
from invoke.exceptions import Exit

from .context import JSON_HELP, LOGIN_NODE, load, reads_inventory, session, show_status
from .show import report
from .steps import lifecycle


def show(result, master):
    """Print the master's table: controller and Jupyter started or running, and answering."""
    report.results_table("master", {master.name: result},
                         [("controller", "controller"), ("jupyter", "jupyter")])


def print_urls(port, token):
    """The dashboard's URL, then Jupyter's alone on the last line (``fab master.url | tail -1``)."""
    print(f"Dashboard: {report.dashboard_url(port, token)}")
    print(report.jupyter_url(port, token))


def bring_up(fleet_, inventory, master):
    """Start the controller and Jupyter on *master*, wait until Jupyter answers; exit
    non-zero, without a URL, if that failed."""
    result = lifecycle.start_master(fleet_, inventory, master, wait_jupyter=True)
    show(result, master)
    report.fail_if(report.failures({master.name: result}))
    return result


def bring_down(fleet_, inventory, master):
    """Stop the controller and Jupyter on *master*; exit non-zero if anything is left."""
    result = lifecycle.stop_master(fleet_, inventory, master)
    report.results_table("master stopped", {master.name: result},
                         [("controller left", "left_controller"), ("jupyter left", "left_jupyter")])
    report.fail_if(report.failures({master.name: result}))


def _start(c, inventory):
    """Start the master's programs (on the node of its job, with ``slurm_master``)."""
    with session(c, inventory) as cluster:
        result = bring_up(cluster.fleet, cluster.inventory, cluster.master)
    print_urls(inventory.settings.jupyter_port, result.facts["token"])


def _stop(c, inventory):
    with session(c, inventory, if_no_job=LOGIN_NODE) as cluster:
        bring_down(cluster.fleet, cluster.inventory, cluster.master)


def _host_from(c, inventory):
    host = getattr(c, "original_host", None)
    if not host:
        raise Exit("error: name the master with -H HOST, e.g. fab -H node01 start-master", code=2)
    if inventory.master_allocation:  # no other task would ever look there
        raise Exit(f"error: -H {host}: the controller runs in the job of "
                   f"{inventory.master_allocation.name} (slurm_master=yes): fab master.start "
                   "starts it there", code=2)
    return host


@task
@reads_inventory
def start(c):
    """Start the controller and Jupyter on the inventory's master (what is missing only)."""
    _start(c, load())


@task
@reads_inventory
def stop(c):
    """Stop the controller and Jupyter on the inventory's master; nothing is left running."""
    _stop(c, load())


@task(help={"json": JSON_HELP})
@reads_inventory
def status(c, json=False):
    """Show whether the controller and Jupyter run and answer; exit 0 only if both do."""
    show_status(c, "master.status", "the master is stopped: neither the controller nor Jupyter"
                " runs (fab master.start starts them)", json=json, engines=False)


@task
@reads_inventory
def url(c):
    """Print the Jupyter URL with its token (last line), after the dashboard's ("Dashboard: URL")."""
    inventory = load()
    with session(c, inventory) as cluster:
        result = lifecycle.read_token(cluster.fleet, cluster.inventory)
    report.fail_if(report.failures({cluster.master.name: result}))
    print_urls(inventory.settings.jupyter_port, result.facts["token"])


@task(name="start-master")
@reads_inventory
def start_master(c):
    """Start the controller and Jupyter on the host given with -H (fab -H HOST start-master)."""
    _start(c, load(master=_host_from(c, load())))


@task(name="stop-master")
@reads_inventory
def stop_master(c):
    """Stop the controller and Jupyter on the host given with -H (fab -H HOST stop-master)."""
    _stop(c, load(master=_host_from(c, load())))


ns = Collection("master", start, stop, status, url)
