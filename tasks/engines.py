"""
Tasks for the engines: ``ipengine`` processes on every engine host of the inventory.
"""

from fabric import task
from invoke import Collection
from invoke.exceptions import Exit

from .context import HOSTS_HELP, JSON_HELP, LOGIN_NODE, choose, load, reads_inventory, session, show_status
from .commands.by_hand import by_hand
from .show import report
from .show.progress import watching
from .steps import lifecycle
from .steps.slurm import allocations, job_engines


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


def say(line):
    """A line of progress while allocations wait (their jobs' states)."""
    report.console.print(line, highlight=False)


def bring_up_allocations(fleet_, inventory, chosen, up=None, **options):
    """
    Make sure each allocation of *chosen* has a running job with its engines registered
    (`tasks.steps.slurm.allocations.bring_up`, *options* go there), show the table and return
    the `tasks.steps.slurm.allocations.AllocationsUp` (*up*, filled, when given).
    """
    up = allocations.AllocationsUp() if up is None else up
    if chosen:
        allocations.bring_up(fleet_, inventory, chosen, up, say=say, watch=watching, **options)
        report.allocations_table(up)
    return up


def wait_allocations(fleet_, inventory, up, registered=None):
    """Wait for the engines of the running jobs of *up* (`tasks.steps.slurm.allocations.wait_engines`:
    not again when *registered*, the counts of a wait just made, has them all); show the table."""
    allocations.wait_engines(fleet_, inventory, up, watch=watching, registered=registered)
    if up.jobs:
        report.allocations_table(up)
    return up


def cancel_allocations(fleet_, inventory, chosen):
    """End the jobs of the allocations *chosen*, show what ended; returns the problems."""
    return show_cancelled(allocations.cancel(fleet_, inventory, chosen))


def show_cancelled(ended):
    """Print a line per allocation of *ended* (``{name: (job id or None, problem or None)}``):
    its job ended, or it had none; returns the problems."""
    problems = []
    for name, (job, problem) in ended.items():
        print(f"{name}: " + (f"job {job} ended" if job and not problem else "no job" if not job
                              else f"job {job}: {problem}"))
        if problem:
            problems.append(f"{name}: {problem}")
    return problems


def cancel_submitted(c, inventory, up):
    """After Ctrl-C: cancel the jobs this command submitted (*up*'s), those whose submit it
    was still waiting for too (their jobs may be queued already); the line to show."""
    names = {name for name, _ in up.submitted} | set(up.submitting)
    if not names:
        return ""
    try:
        with session(c, inventory) as cluster:  # Slurm's commands: on the login node
            problems = cancel_allocations(cluster.fleet, cluster.written, [
                a for a in inventory.allocations if a.name in names])
    except Exception as error:  # noqa: BLE001 (whatever went wrong, say what to do)
        problems = [str(error)]
    jobs = " ".join([*(job for _, job in up.submitted), *(f"of {name}" for name in up.submitting)])
    return (f"; the jobs submitted ({jobs}) were cancelled" if not problems else
            f"; cancel the jobs submitted ({jobs}) with scancel on {inventory.slurm_host.name}")


def bring_down(fleet_, inventory, hosts):
    """Stop every engine on *hosts*, show the table and return the problems."""
    results = lifecycle.stop_engines(fleet_, inventory, hosts)
    report.results_table("engines stopped", results, [("engines left", "left_engine")])
    return report.failures(results)


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def start(c, hosts=""):
    """Start the engines missing on each engine host (or those named); return when all have registered.

    A Slurm allocation without a job gets one (as cluster.up submits it); in a job that
    runs, engines.restart starts its engines anew.
    """
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    allocated = inventory.chosen_allocations(hosts.split(","))
    up = allocations.AllocationsUp()
    try:
        with session(c, inventory) as cluster:
            fleet_, inventory = cluster.fleet, cluster.inventory
            problems = bring_up(fleet_, inventory, chosen).problems if chosen or not allocated else []
            problems += bring_up_allocations(fleet_, inventory, allocated, up).problems
    except KeyboardInterrupt:
        raise Exit("interrupted" + cancel_submitted(c, inventory, up), code=130) from None
    report.fail_if(problems)


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def stop(c, hosts=""):
    """Stop every engine on every engine host (or those named: a drain); no engine process is left.

    A Slurm allocation's engines stop with its job, which ends: its nodes go back to Slurm;
    but the job whose first node runs the controller (slurm_master=yes) runs on, without
    engines (engines.restart starts them again; cluster.down ends it).
    """
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    allocated = inventory.chosen_allocations(hosts.split(","))
    try:
        with session(c, inventory, if_no_job=LOGIN_NODE) as cluster:
            fleet_, inventory = cluster.fleet, cluster.inventory
            problems = bring_down(fleet_, inventory, chosen) if chosen or not allocated else []
            problems += cancel_allocations(fleet_, inventory, [a for a in allocated if not a.master])
            in_job = [a for a in allocated if a.master]
            if in_job:
                down = job_engines.hold(fleet_, inventory, in_job, allocations.AllocationsUp())
                for a in down.running if not down.problems else ():
                    print(f"{a.name}: engines stopped; job {down.jobs[a.name].id} runs on, with the "
                          "controller and Jupyter (fab cluster.down ends it)")
                problems += down.problems
    except KeyboardInterrupt:
        raise Exit("interrupted: the engines were stopping; fab engines.stop stops the rest",
                   code=130) from None
    report.fail_if(problems)


@task(help={"hosts": HOSTS_HELP})
@reads_inventory
def restart(c, hosts=""):
    """Stop the engines (of every engine host, or those named) and start them again.

    It returns when they have registered; other hosts' engines are untouched.

    A Slurm allocation's engines start again inside the same job: no new wait in the queue.
    """
    inventory = load()
    chosen = choose(inventory, "engines", hosts)
    allocated = inventory.chosen_allocations(hosts.split(","))
    try:
        with session(c, inventory) as cluster:
            fleet_, inventory = cluster.fleet, cluster.inventory
            problems = []
            if chosen or not allocated:
                problems = bring_down(fleet_, inventory, chosen) + bring_up(fleet_, inventory, chosen).problems
            if allocated:
                up = job_engines.restart_engines(fleet_, inventory, allocated, allocations.AllocationsUp(),
                                                 watch=watching)
                report.allocations_table(up)
                problems += up.problems
    except KeyboardInterrupt:
        raise Exit("interrupted: the engines were restarting; fab engines.start starts what is "
                   "missing", code=130) from None
    report.fail_if(problems)


@task(help={"hosts": HOSTS_HELP, "json": JSON_HELP})
@reads_inventory
def status(c, hosts="", json=False):
    """Show the engines running and registered per host; exit 0 only if all are."""
    show_status(c, "engines.status", "the engines are stopped: none runs on any engine host"
                " (fab engines.start starts them)", hosts, json, master=False)


@task(help={"hosts": "only these Slurm allocations: comma-separated names or patterns (all of them "
                     "when empty)"})
@reads_inventory
def script(c, hosts=""):
    """Print the batch script and the sbatch line that cluster.up submits for each allocation.

    Nothing is submitted and no host is contacted: both are built from the inventory. The
    output is a program for sh on the login node that submits the job by hand, as cluster.up
    does (fab engines.script --hosts=gpu_alloc | ssh LOGIN sh); its comment lines say what
    only the login node knows as sbatch runs there.
    """
    inventory = load()
    if not inventory.allocations:
        print("the inventory has no Slurm allocation (a group with slurm_nodes=): nothing to submit")
        return
    names = [name for name in hosts.split(",") if name]
    unknown = [name for name in names if not inventory.chosen_allocations([name])]
    if unknown:
        raise Exit(f"error: --hosts={hosts}: {', '.join(unknown)}: no Slurm allocation of the inventory"
                   f" (its allocations: {', '.join(a.name for a in inventory.allocations)})", code=2)
    print("\n".join(by_hand(inventory, a) for a in inventory.chosen_allocations(names)), end="")


ns = Collection("engines", start, stop, restart, status, script)
