"""
What runs where (``cluster.status``, ``master.status``, ``engines.status``): each
host's sessions and the controller's count of engines, in one round trip, turned
into one row per host with what is wrong there.
"""

import time
from dataclasses import dataclass, field

from .. import commands
from ..commands import slurm
from ..commands.answers import parse_probe, parse_supervisor, session_names
from ..remote.shared.screen_logs import engine_uuid
from .slurm import keeper
from .slurm.allocations import SLURM_ANSWER
from .registration import SLACK


@dataclass
class Status:
    """What runs where: one `HostResult` per host and the controller's report."""

    results: dict
    probe: dict = None
    rows: list = field(default_factory=list)


def read_status(fleet, inventory, master=True, engines=True, hosts=None, allocations=None):
    """
    Ask the hosts what runs, and the controller which engines it has, in one round trip.

    *master* and *engines* choose which roles are checked; *hosts*, which hosts are shown
    (the master is asked about the engines in any case); *allocations*, which Slurm
    allocations (default: all of them, with *engines*).

    :returns: a `Status` whose ``rows`` are dicts: host, roles, state, sessions,
        registered, expected, threads (per running engine), restarts, problems (an
        empty list when all is as wanted) and notes (what went wrong and mended itself:
        the controller's and Jupyter's restarts); an engine host's row also has
        engines (one dict per engine its supervisor keeps: number, pid, state, starts,
        rss and limit in bytes) and resources (the host's CPU, load, memory and GPUs, see
        ``tasks/remote/engines/host_sample.py``; None while unknown); a master's row also has
        controller_restarts, controller_last_restart, jupyter_restarts and
        jupyter_last_restart.
    """
    engine_hosts = {host.name for host in inventory.engines} if engines else set()
    shown = {host.name for host in (inventory.hosts if hosts is None else hosts)}
    hosts = [h for h in inventory.hosts if h.name in shown
             and (h.name in engine_hosts or (master and h == inventory.master))]
    parts = {host: [commands.host_status(host)] for host in hosts}
    parts.setdefault(inventory.master, []).append(commands.probe(inventory.settings))
    allocated = (inventory.allocations if allocations is None else allocations) if engines else ()
    login = inventory.slurm_host  # the master, or the login node of a master in a job
    if allocated:
        parts.setdefault(login, []).extend([*(slurm.on_job("slurm_jobs", inventory.settings, i, a)
                                              for i, a in enumerate(allocated)), slurm.keeper_said()])
    results = fleet.run({h: commands.script(inventory.settings, *p, setup=h.setup)
                         for h, p in parts.items()}, SLURM_ANSWER if allocated else SLACK)
    probe = parse_probe(results[inventory.master.name].facts)
    status = Status(results, probe)
    for host in hosts:
        is_master = master and host == inventory.master
        status.rows.append(_status_row(inventory.settings.cluster_name, host, results[host.name],
                                       probe, is_master, host.name in engine_hosts))
    for index, allocation in enumerate(allocated):
        rows = _allocation_rows(index, allocation, results[login.name], probe, inventory.settings)
        _keeper_lines(rows[0])
        status.rows += rows
    return status


#: Below this many seconds left of its job's time, an allocation's row warns.
LITTLE_TIME = 600


def _allocation_rows(index, allocation, master_result, probe, settings):
    """The row of a Slurm allocation (its job: id, state, reason, nodes, time left; its
    engines registered of expected, the file of its output), then a row per node of its job
    that runs."""
    row = {"host": allocation.name, "roles": ["allocation"], "state": master_result.state,
           "sessions": [], "registered": None, "expected": None, "threads": None,
           "restarts": None, "problems": [], "notes": [], "job": None}
    if not master_result.ok:
        row["problems"].append(f"cannot ask Slurm: {master_result.reason}")
        return [row]
    job = slurm.parse_job(master_result.facts.get(f"slurm_{index}", ""))
    row["keeper"] = _keeper(allocation, master_result.facts, job)
    if job is None:
        row["problems"].append("no job (fab cluster.up submits one)")
        return [row]
    row["job"] = {"id": job.id, "state": job.state, "reason": job.reason or None,
                  "nodes": job.nodes or None, "time_left": job.left or None,
                  "seconds_left": job.seconds_left, "start": job.start or None, "active": job.active,
                  "output": slurm.output_file(settings, allocation, job)}
    if not job.active:
        row["problems"].append(f"job {job.id} ended ({job.state}): {slurm.ENDED.get(job.state, 'it is over')};"
                               f" its output: {row['job']['output']}; fab cluster.up submits a new one")
        return [row]
    if job.state != "RUNNING":
        row["problems"].append(f"job {job.id} is {job.state}"
                               + (f" ({job.reason})" if job.reason else ""))
        return [row]
    expected = slurm.expected(job, allocation)
    engines = (probe or {}).get("engines", {})
    rows = []
    for node, want in expected.items():
        have = engines.get(node, 0)
        rows.append({"host": node, "roles": ["node"], "allocation": allocation.name, "state": "ok",
                     "sessions": [], "registered": have, "expected": want, "threads": None,
                     "restarts": None, "notes": [],
                     "problems": [] if have == want else [f"{have} of {want} engines registered"]})
    row.update(registered=sum(r["registered"] for r in rows), expected=sum(expected.values()))
    if job.held and allocation.master:
        row["problems"].append(f"job {job.id} runs without its engines (engines.stop): fab "
                               "engines.start starts them")
    if job.seconds_left is not None and job.seconds_left < LITTLE_TIME and not row["keeper"]["renews"]:
        row["notes"].append(f"warning: {job.left} left of the job's time: its engines stop "
                            f"{slurm.MARGIN // 60} min before the end at the latest")
    return [row, *rows]


def _keeper(allocation, facts, job):
    """What the keeper of *allocation*'s jobs says (`tasks.steps.slurm.keeper`): its state,
    whether it renews them, their count running and pending as it last saw them, its last
    decision and when; *wanted*: it should run (the job is there, and renewed)."""
    state, decisions = keeper.said(facts)
    last = decisions.get(allocation.name, {})
    renewed = allocation.renew != 0 and not allocation.master  # the controller's job: never
    return {"state": state, "renews": state == "running" and renewed,
            "running": last.get("running"), "pending": last.get("pending"),
            "decision": last.get("decision"),
            "at": time.strftime("%H:%M:%S", time.localtime(last["at"])) if last else None,
            "wanted": bool(job and job.active and renewed)}


def _keeper_lines(row):
    """*row*'s note of its keeper, or its problem: the keeper should run and does not."""
    kept = row.get("keeper")
    if not kept or not kept["wanted"]:
        return
    if kept["state"] != "running":
        row["problems"].append("the keeper of its jobs " + (
            "gave up (its log, NAME-keeper.log in the run folder, says why)" if kept["state"] == "gaveup" else "does not run")
            + ": they are not renewed; fab cluster.up starts it again")
    elif kept["decision"]:
        row["notes"].append(f"keeper: {kept['running']} running, {kept['pending']} pending; at "
                            f"{kept['at']}: {kept['decision']}")


def _master_problems(name, sessions, probe):
    """What is wrong with the controller and Jupyter: not running, or running but silent."""
    answered = {"controller": bool(probe and probe["controller"]),
                "jupyter": bool(probe and probe["jupyter"])}
    problems = []
    for program, answers in answered.items():
        if f"{name}-{program}" not in sessions:
            problems.append(f"{program} not running")
        elif not answers and program == "jupyter" and probe and probe["jupyter_problem"]:
            problems.append(probe["jupyter_problem"])
        elif not answers:
            why = probe["error"] if probe and program == "controller" else ""
            problems.append(f"{program} does not answer" + (f" ({why})" if why else ""))
    return problems


def _gave_up(facts, programs, host):
    """A problem for each of *programs* (controller, jupyter, engine numbers) whose keeper
    (nanny or supervisor) gave up (host_status's ``gaveup_PROGRAM=``)."""
    return [f"{'engine ' if program.isdigit() else ''}{program} crash-looping:"
            f" {facts[f'gaveup_{program}']}; fab cluster.logs --hosts={host} says why"
            for program in programs if f"gaveup_{program}" in facts]


def _master_restarts(row):
    """How often the controller and Jupyter were started again since they were started."""
    notes = []
    for program in ("controller", "jupyter"):
        count = row[f"{program}_restarts"]
        if count:
            notes.append(f"{program} restarted {count} time{'s' * (count > 1)}, the last at"
                         f" {row[f'{program}_last_restart']}")
    return notes


def _status_row(name, host, result, probe, is_master, is_engine_host):
    roles = (["master"] if is_master else []) + (["engines"] if is_engine_host else [])
    sessions = session_names(result.facts)
    row = {"host": host.name, "roles": roles, "state": result.state, "sessions": sessions,
           "registered": None, "expected": None, "threads": None, "restarts": None,
           "problems": [], "notes": []}
    if not result.ok:
        row["problems"].append(result.reason)
        return row
    if is_master:
        row["problems"] += _master_problems(name, sessions, probe)
        row["problems"] += _gave_up(result.facts, ("controller", "jupyter"), host.name)
        for program in ("controller", "jupyter"):
            row[f"{program}_restarts"] = int(result.facts.get(f"{program}_restarts") or 0)
            row[f"{program}_last_restart"] = result.facts.get(f"{program}_restarted") or None
        row["notes"] += _master_restarts(row)
    if is_engine_host:
        expected = int(result.facts.get("expected", 0))
        supervisor = parse_supervisor(result.facts) or {}
        engines = [{"number": int(n), **facts} for n, facts in supervisor.get("engines", {}).items()]
        running = {e["number"] for e in engines if e["state"] == "running"}
        registered = (probe or {}).get("engines", {}).get(host.name, 0)
        row.update(registered=registered, expected=expected, threads=result.facts.get("threads"),
                   restarts=int(result.facts.get("restarts", 0)), engines=engines,
                   resources=supervisor.get("host") or None)
        if result.facts.get("plan_problem"):
            row["problems"].append(result.facts["plan_problem"])
        numbers = sorted(key[len("gaveup_"):] for key in result.facts
                         if key.startswith("gaveup_") and key[len("gaveup_"):].isdigit())
        row["problems"] += _gave_up(result.facts, numbers, host.name)
        row["unsupervised"] = bool(result.facts.get("supervisor_ended"))  # its engines may run
        if row["unsupervised"]:
            row["problems"].append("the engines' supervisor ended without a stop (fab cluster.logs"
                                   f" --hosts={host.name} says why); fab engines.start starts it again")
        elif len(running) != expected:
            row["problems"].append(f"{len(running)} of {expected} engines running")
        orphans = _orphans(host.name, running, probe)
        for number in orphans:
            row["problems"].append(f"engine {number} runs but is not registered (the controller"
                                   " dropped its registration; fab engines.start starts it again)")
        if registered + len(orphans) != expected:
            row["problems"].append(f"{registered} of {expected} engines registered")
    return row


def _orphans(label, running, probe):
    """The numbers of *label*'s engines that run (*running*) but whose registration the
    controller dropped (the probe's ``orphans``, see `tasks.remote.master.probe.orphans`)."""
    found = filter(None, map(engine_uuid, (probe or {}).get("orphans", [])))
    numbers = {number for host, number, _ in found if host == label}
    return sorted(numbers & running)
