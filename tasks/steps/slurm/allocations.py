"""
The steps of the Slurm allocations (`tasks.inventory.allocations`): ask Slurm whether it
would run each job, submit them, wait until they run, then until their engines registered,
read their state, restart their engines in the same job, cancel them.

The Slurm commands run on the master (the login node) over SSH, one round trip for all
allocations (``tasks/remote/steps/slurm/slurm.sh``); the engines on the nodes register
with the controller under ``NODE@JOB`` (`tasks.commands.slurm.label`), which is how they
are counted. With ``slurm_master=yes`` the controller and Jupyter run on the first node of
that allocation's job instead (`master_job`). Steps return results and never print, but
through *say* (a function of one line) while they wait.
"""

import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from ... import commands
from ...commands import slurm
from ..lifecycle import read_engine_file
from ..registration import SLACK, shortfalls, wait_for_engines
from .job_key import bring_key

POLL = 0.5  #: seconds between two looks at a job that does not run yet (Slurm starts one in ~1 s)
#: Seconds Slurm's commands get to answer in one round trip to the login node: a busy slurmctld
#: takes tens (over 30 s on a loaded 2-core test site, failing a cluster.up).
SLURM_ANSWER = 90
TEST_SCRIPT = "#!/bin/sh\ntrue\n"  #: what ``sbatch --test-only`` reads: Slurm judges the options alone


def _on_login(fleet, inventory, steps, timeout=SLURM_ANSWER):
    """Run *steps* where the Slurm commands run: the inventory's master (a login node)."""
    login = inventory.slurm_host
    return fleet.run({login: commands.script(inventory.settings, *steps, setup=login.setup)},
                     timeout)[login.name]


def _reports(result, allocations):
    """``{allocation name: its slurm_INDEX report}`` of a master's *result*."""
    return {a.name: result.facts.get(f"slurm_{i}", "") for i, a in enumerate(allocations)}


def check(fleet, inventory, allocations=None):
    """``{allocation name: problem}``: what Slurm refuses of each job, in its own words
    (``sbatch --test-only``: nothing is submitted); empty when Slurm would run them all."""
    allocations = inventory.allocations if allocations is None else allocations
    if not allocations:
        return {}
    settings = inventory.settings
    result = _on_login(fleet, inventory, [slurm.submit(settings, i, a, TEST_SCRIPT, "test")
                                           for i, a in enumerate(allocations)])
    if not result.ok:
        return {a.name: f"cannot ask Slurm on {inventory.slurm_host.name}: {result.reason}"
                for a in allocations}
    problems = {}
    for name, report in _reports(result, allocations).items():
        verdict, said = slurm.parse_verdict(report)
        if verdict != "ok":
            problems[name] = f"Slurm refuses the request: {said or 'no answer'}"
    return problems


def read_jobs(fleet, inventory, allocations=None):
    """``{allocation name: slurm.Job or None}`` (None: no job of this cluster's), or
    ``{name: str}`` with why Slurm could not be asked."""
    allocations = inventory.allocations if allocations is None else allocations
    steps = [slurm.on_job("slurm_jobs", inventory.settings, i, a) for i, a in enumerate(allocations)]
    result = _on_login(fleet, inventory, steps)
    if not result.ok:
        return {a.name: f"cannot ask Slurm on {inventory.slurm_host.name}: {result.reason}"
                for a in allocations}
    return {name: slurm.parse_job(report) for name, report in _reports(result, allocations).items()}


def _on_jobs(fleet, inventory, functions, allocations):
    """Run each of *functions* (``slurm_cancel`` then ``slurm_cancelled``, or
    ``slurm_restart``) on each allocation's job, in one round trip: ``{name: the last
    report's fields}`` (empty: no job of ours), or ``{name: str}`` when it failed."""
    steps = [slurm.on_job(function, inventory.settings, i, a)
             for function in functions for i, a in enumerate(allocations)]
    if not steps:
        return {}
    result = _on_login(fleet, inventory, steps)
    if not result.ok:
        return {a.name: f"cannot ask Slurm on {inventory.slurm_host.name}: {result.reason}"
                for a in allocations}
    return {name: [f for f in report.split("|") if f]
            for name, report in _reports(result, allocations).items()}


def cancel(fleet, inventory, allocations=None):
    """End each allocation's job (pending or running), if it is this cluster's; wait until
    each holds no node (all told first, then waited for on one clock).
    ``{name: (job id or None, problem or None)}``."""
    allocations = inventory.allocations if allocations is None else allocations
    return {name: (None, report) if isinstance(report, str) else _cancelled(report)
            for name, report in _on_jobs(fleet, inventory, ("slurm_cancel", "slurm_cancelled"),
                                         allocations).items()}


def _cancelled(fields):
    """``(job id or None, problem or None)`` of a ``slurm_cancelled`` report's fields."""
    return (fields[0] if fields else None, fields[2] if len(fields) > 2 else None)


def cancelled(master_result):
    """What `tasks.commands.slurm.cancel_all` and ``cancelled_all`` did, from the master's
    result: ``{group: (job id or None, problem or None)}`` of every job the cluster had recorded."""
    found, facts = {}, master_result.facts
    for index in range(len([key for key in facts if key.startswith("slurm_group_")])):
        fields = [f for f in facts.get(f"slurm_{index}", "").split("|") if f]
        found[facts[f"slurm_group_{index}"]] = _cancelled(fields)
    return found


def restart(fleet, inventory, allocations, function="slurm_restart"):
    """Tell each running job to start its engines anew (a new job step; *function*
    ``slurm_hold``: to stop them, the job running on); ``{name: problem}`` for those that do
    not run."""
    problems = {}
    for name, report in _on_jobs(fleet, inventory, (function,), allocations).items():
        if isinstance(report, str):
            problems[name] = report
        elif not report:
            problems[name] = "no job: fab engines.start (or cluster.up) submits one"
        elif report[1] != "RUNNING":
            problems[name] = f"job {report[0]} is {report[1]}, not running: its engines start with it"
    return problems


@dataclass
class AllocationsUp:
    """What bringing the allocations' engines up did."""

    jobs: dict = field(default_factory=dict)       # name -> slurm.Job (its last state)
    submitted: list = field(default_factory=list)  # (name, job id) submitted by this call
    submitting: list = field(default_factory=list)  # names whose submit has no answer yet
    expected: dict = field(default_factory=dict)   # label (NODE@JOB) -> engines wanted there
    registered: dict = None                        # label -> engines registered; None: unknown
    groups: dict = field(default_factory=dict)     # name -> its nodes' labels (NODE@JOB)
    problems: list = field(default_factory=list)   # ``group: reason`` lines
    chosen: list = field(default_factory=list)     # the allocations whose jobs are waited for
    running: list = field(default_factory=list)    # those whose jobs run
    engine_file: str = field(default=None, repr=False)  # the controller's, for nodes without a shared home


def bring_up(fleet, inventory, allocations, up, renew=False, engine_file=None, say=print,
             watch=None):
    """
    Make sure each allocation has a running job with its engines registered: `submit`,
    `wait_running` (a held job, see `tasks.commands.slurm.Job.held`, is told to start its
    engines), then `wait_engines`. Fills *up* (an `AllocationsUp`, given by the caller so that it knows what
    was submitted if Ctrl-C ends this).
    """
    submit(fleet, inventory, allocations, up, renew, engine_file, say)
    wait_running(fleet, inventory, up, say)
    held = [a for a in up.running if up.jobs[a.name].held]  # engines.stop's: start them again
    up.problems += [f"{name}: {why}" for name, why in restart(fleet, inventory, held).items()]
    return wait_engines(fleet, inventory, up, watch)


def submit(fleet, inventory, allocations, up, renew=False, engine_file=None, say=print):
    """
    Submit a job for each allocation that has none queued or running (a job of this cluster's
    that is, is kept; with *renew*, for a new controller whose engines it could not reach, it
    is ended first), in one round trip; fills *up* (``submitted``, ``chosen``: what `wait`
    waits for; ``submitting`` while the answer is awaited, for a Ctrl-C then). Without a
    shared home, the nodes get the controller's connection file over SSH once their job runs
    (`wait_running`): *engine_file*, read from the master when not given, kept in *up*.
    """
    settings = inventory.settings
    if not settings.shared_home:
        up.engine_file = engine_file or up.engine_file
        if _engine_file(fleet, inventory, up) is None:
            return up
    chosen = list(allocations)
    if chosen:
        scripts = [slurm.job_script(settings, a) for a in chosen]
        up.submitting = [a.name for a in chosen]
        result = _on_login(fleet, inventory, [
            slurm.submit(settings, i, a, script, "renew" if renew else "keep")
            for i, (a, script) in enumerate(zip(chosen, scripts))], timeout=90 + SLACK)
        reports, up.submitting = _reports(result, chosen) if result.ok else {}, []
        for a in list(chosen):
            verdict, said = slurm.parse_verdict(reports.get(a.name, f"refused|{result.reason}"))
            if verdict == "submitted":
                up.submitted.append((a.name, said))
                say(f"{a.name}: submitted job {said} ({a.nodes} node{'s' * (a.nodes > 1)})")
            elif verdict != "kept":
                up.problems.append(f"{a.name}: Slurm refuses the job: {said}")
                chosen.remove(a)
    up.chosen += chosen
    return up


def _engine_file(fleet, inventory, up):
    """The controller's connection file, for nodes without a shared home: *up*'s, else read
    from the master and kept in *up*; None, with a problem in *up*, when it cannot be read."""
    if up.engine_file is None:
        up.engine_file = read_engine_file(fleet, inventory)
        if up.engine_file is None:
            up.problems.append(f"{inventory.master.name}: cannot read the controller's connection "
                               "file: is the controller up?")
    return up.engine_file


def wait_running(fleet, inventory, up, say=print):
    """
    Wait until the jobs `submit` chose (``up.chosen``, those not running already) run (at most
    SLURM_WAIT s, after which a job still pending is cancelled; one Slurm will never start as
    asked, at once); adds to ``up.running``, ``up.groups`` and ``up.expected`` (their nodes'
    engines). Without a shared home, the controller's connection file then goes to their
    nodes over SSH (`tasks.steps.slurm.job_key`): their engines start once it is there.
    """
    running = _wait_running(fleet, inventory, [a for a in up.chosen if a not in up.running], up, say)
    if running and not inventory.settings.shared_home and _engine_file(fleet, inventory, up):
        up.problems += bring_key(fleet, inventory, {a.name: up.jobs[a.name] for a in running},
                                 up.engine_file)
    up.running += running
    for a in running:
        up.groups[a.name] = list(slurm.expected(up.jobs[a.name], a))
        up.expected.update(slurm.expected(up.jobs[a.name], a))
    return up


def wait_engines(fleet, inventory, up, watch=None, registered=None):
    """
    Wait until the engines of the running jobs registered (at most ENGINE_TIMEOUT s,
    *watch* as in `tasks.steps.lifecycle.engines_up`), unless *registered* (``{label:
    engines}`` of a wait just made for them, such as `tasks.steps.lifecycle.engines_up`'s
    with these labels ``also``) says how it went; names each node short of its count.
    """
    if not up.expected:
        return up
    settings = inventory.settings
    if registered is None:
        with watch(up.expected) if watch else nullcontext() as stream:
            result, probe = wait_for_engines(fleet, inventory, up.expected, settings.engine_timeout,
                                             progress=stream)
        if probe is None:
            up.problems.append(f"{inventory.master.name}: cannot ask the controller: "
                               f"{result.reason or 'no answer'}")
            return up
        registered = probe["engines"]
    up.registered = {label: registered.get(label, 0) for label in up.expected}
    for a in up.running:
        short = shortfalls({n: up.expected[n] for n in up.groups[a.name]}, up.registered)
        for label, (have, want) in short.items():
            up.problems.append(f"{a.name}: {label}: {have} of {want} engines registered after "
                               f"{settings.engine_timeout:g} s; see the job's output in "
                               f"{slurm.output_file(settings, a, up.jobs[a.name])} and the "
                               f"logs in ~/.ipp-cluster/{settings.cluster_name}/{label}/")
    return up


def _wait_running(fleet, inventory, allocations, up, say):
    """Wait until the jobs of *allocations* run, at most SLURM_WAIT s; returns those that
    do, with ``up.jobs`` and ``up.problems`` filled. A job Slurm will never start as asked
    is cancelled at once, one still pending at the end then: each is named, with Slurm's reason."""
    deadline = time.monotonic() + inventory.settings.slurm_wait
    waiting, running, said = list(allocations), [], {}
    while waiting:
        jobs = read_jobs(fleet, inventory, waiting)
        for a in list(waiting):
            job = jobs[a.name]
            if isinstance(job, str) or job is None:
                waiting.remove(a)
                up.problems.append(f"{a.name}: {job or 'its job is gone from the queue'}")
                continue
            up.jobs[a.name] = job
            if job.state == "RUNNING" and job.cpus:
                waiting.remove(a)
                running.append(a)
            elif job.hopeless:
                waiting.remove(a)
                cancel(fleet, inventory, [a])
                up.problems.append(f"{a.name}: Slurm will not start job {job.id} as asked "
                                   f"({job.reason}): it was cancelled; ask for less (slurm_nodes=, "
                                   "slurm_time=) or another partition")
            elif not job.active:
                waiting.remove(a)
                up.problems.append(f"{a.name}: job {job.id} ended ({job.state}) before it ran")
            else:
                line = f"{a.name}: job {job.id} {job.state}" + (f" ({job.reason})" if job.reason else "") + (
                    f", expected start {job.start}" if job.start not in ("", "N/A", "Unknown") else "")
                if said.get(a.name) != line:
                    say(line)
                    said[a.name] = line
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    if waiting:
        cancel(fleet, inventory, waiting)
    for a in waiting:
        job = up.jobs[a.name]
        up.problems.append(f"{a.name}: job {job.id} still {job.state} ({job.reason or 'no reason'}) "
                           f"after {inventory.settings.slurm_wait:g} s: it was cancelled, so that "
                           "nothing of the cluster waits in the queue unwatched; SLURM_WAIT in "
                           "cluster.env waits longer")
    return running
