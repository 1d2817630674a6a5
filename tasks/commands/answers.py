"""
Read what the steps (`tasks.commands.script`) report: ``key=value`` lines on stdout.
"""

import json

from ..remote.shared.screen_logs import engine_uuid


def parse_facts(stdout):
    """Return the ``key=value`` lines of *stdout* as a dict (a later line wins)."""
    facts = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.replace("_", "").isalnum():
            facts[key] = value.strip()
    return facts


def parse_probe(facts):
    """Return the master probe's report (see `tasks.remote.master.probe`), or None if it printed none."""
    text = facts.get("probe")
    if not text:
        return None
    report = json.loads(text)
    report["engines"] = {host: int(count) for host, count in report.get("engines", {}).items()}
    orphans = report.get("orphans")  # uuids read in a log: only those of an engine's form
    report["orphans"] = [uuid for uuid in orphans if engine_uuid(uuid)] if isinstance(orphans, list) else []
    return report


def session_names(facts):
    """The screen sessions a ``sessions=`` fact lists."""
    return facts.get("sessions", "").split()


def parse_supervisor(facts):
    """The state the engines' supervisor wrote (see ``tasks/remote/engines/supervisor.py``), from a
    ``supervisor=`` fact; None without one, or when it is not whole (being replaced)."""
    try:
        state = json.loads(facts.get("supervisor") or "null")
    except ValueError:
        return None
    return state if isinstance(state, dict) else None
