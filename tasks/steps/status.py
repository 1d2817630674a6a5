"""
What runs where (``cluster.status``, ``master.status``, ``engines.status``): each
host's sessions and the controller's count of engines, in one round trip, turned
into one row per host with what is wrong there.
"""

from dataclasses import dataclass, field

from ..remote import commands
from ..remote.protocol import parse_probe, parse_supervisor, session_names
from .lifecycle import SLACK


@dataclass
class Status:
    """What runs where: one `HostResult` per host and the controller's report."""

    results: dict
    probe: dict = None
    rows: list = field(default_factory=list)


def read_status(fleet, inventory, master=True, engines=True, hosts=None):
    """
    Ask the hosts what runs, and the controller which engines it has, in one round trip.

    *master* and *engines* choose which roles are checked; *hosts*, which hosts are shown
    (the master is asked about the engines in any case).

    :returns: a `Status` whose ``rows`` are dicts: host, roles, state, sessions,
        registered, expected, threads (per running engine), restarts, problems (an
        empty list when all is as wanted) and notes (what went wrong and mended itself:
        the controller's and Jupyter's restarts); an engine host's row also has
        engines (one dict per engine its supervisor keeps: number, pid, state, starts,
        rss and limit in bytes) and resources (the host's CPU, load, memory and GPUs, see
        ``tasks/remote/host_sample.py``; None while unknown); a master's row also has
        controller_restarts, controller_last_restart, jupyter_restarts and
        jupyter_last_restart.
    """
    engine_hosts = {host.name for host in inventory.engines} if engines else set()
    shown = {host.name for host in (inventory.hosts if hosts is None else hosts)}
    hosts = [h for h in inventory.hosts if h.name in shown
             and (h.name in engine_hosts or (master and h == inventory.master))]
    parts = {host: [commands.host_status(host)] for host in hosts}
    parts.setdefault(inventory.master, []).append(commands.probe(inventory.settings))
    results = fleet.run({h: commands.script(inventory.settings, *p, setup=h.setup)
                         for h, p in parts.items()}, SLACK)
    probe = parse_probe(results[inventory.master.name].facts)
    status = Status(results, probe)
    for host in hosts:
        is_master = master and host == inventory.master
        status.rows.append(_status_row(inventory.settings.cluster_name, host, results[host.name],
                                       probe, is_master, host.name in engine_hosts))
    return status


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
    controller dropped (the probe's ``orphans``, see `tasks.remote.probe.orphans`)."""
    numbers = {int(uuid.split("/")[1]) for uuid in (probe or {}).get("orphans", [])
               if uuid.split("/")[0] == label}
    return sorted(numbers & running)
