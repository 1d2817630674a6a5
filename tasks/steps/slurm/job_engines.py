"""
The engines inside an allocation's running job, the job left as it is: started anew in a
new job step (`restart_engines`), stopped with the job running on (`hold`), or shut down by
the controller (`shut_down`). Steps return results and never print.
"""

from ... import commands
from ...commands import slurm
from ..registration import SLACK, wait_for_engines
from .allocations import read_jobs, restart, wait_engines


def restart_engines(fleet, inventory, allocations, up, watch=None):
    """Start the engines of each running job anew, in the same job: the controller first
    drops the old ones (`shut_down`), then the job starts a new step (`restart`); then wait,
    as `tasks.steps.slurm.allocations.bring_up` does, until the new ones registered. Fills *up* (an `AllocationsUp`)."""
    shut_down(fleet, inventory, allocations, up)
    if not up.running:
        return up
    up.problems += [f"{name}: {why}" for name, why in restart(fleet, inventory, up.running).items()]
    return wait_engines(fleet, inventory, up, watch)


def hold(fleet, inventory, allocations, up):
    """Stop the engines of each running job, the job running on (``slurm_hold``: its step
    ends), and wait until the controller has none of them; `restart` starts them again.
    Fills *up* as `shut_down` does."""
    _running(fleet, inventory, allocations, up)
    if up.running:
        up.problems += [f"{name}: {why}" for name, why in
                        restart(fleet, inventory, up.running, "slurm_hold").items()]
        labels = [label for a in up.running for label in up.groups[a.name]]
        result, probe = wait_for_engines(fleet, inventory, dict.fromkeys(labels, 0),
                                         inventory.settings.engine_timeout)
        left = {label: n for label, n in (probe or {}).get("engines", {}).items() if label in labels and n}
        if probe is None:
            up.problems.append(f"{inventory.master.name}: cannot ask the controller: "
                               f"{result.reason or 'no answer'}")
        up.problems += [f"{label}: {n} engines still registered after "
                        f"{inventory.settings.engine_timeout:g} s" for label, n in left.items()]
    return up


def shut_down(fleet, inventory, allocations, up):
    """Have the controller shut down the engines of each running job, and wait until it has
    none of them, the job running on (their supervisors may start one again that ended
    badly: `restart`'s new step ends them all). Fills *up* (``running``, ``jobs``,
    ``groups``, ``expected``)."""
    _running(fleet, inventory, allocations, up)
    if not up.running:
        return up
    labels = [label for a in up.running for label in up.groups[a.name]]
    master = inventory.master  # the controller drops them
    fleet.run({master: commands.script(inventory.settings, commands.probe(
        inventory.settings, shutdown=labels, jupyter=False), setup=master.setup)}, SLACK)
    wait_for_engines(fleet, inventory, dict.fromkeys(labels, 0), 30)  # every old one dropped
    return up


def _running(fleet, inventory, allocations, up):
    """Fill *up* with the running jobs of *allocations*, and a problem for each other."""
    jobs = read_jobs(fleet, inventory, allocations)
    for a in allocations:
        job = jobs[a.name]
        if isinstance(job, slurm.Job) and job.state == "RUNNING" and job.cpus:
            up.jobs[a.name], up.groups[a.name] = job, list(slurm.expected(job, a))
            up.expected.update(slurm.expected(job, a))
            up.running.append(a)
        else:
            why = job if isinstance(job, str) else (
                f"job {job.id} is {job.state}, not running" if job else "no job")
            up.problems.append(f"{a.name}: {why}: fab engines.start (or cluster.up) starts it")
    return up
