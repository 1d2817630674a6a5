"""
The keeper of the allocations' jobs (``tasks/remote/master/keeper.py``), on the login node:
started by ``cluster.up`` once the jobs are submitted (it tops each allocation up to its
``slurm_jobs``, then renews them before their end while no ``fab`` runs), stopped by
``cluster.down`` before the jobs are cancelled (`tasks.steps.lifecycle.stop_all`), and
what it last decided, for ``cluster.status``. Steps return results and never print.
"""

import json

from ...commands import slurm
from .allocations import _on_login


def start(fleet, inventory, allocations):
    """Start (or keep) the keeper of *allocations* (those without ``slurm_master``); the
    problems, as ``group: reason`` lines."""
    if not allocations:
        return []
    result = _on_login(fleet, inventory, [slurm.start_keeper(inventory.settings, allocations)])
    if not result.ok:
        return [f"{inventory.slurm_host.name}: the keeper of the Slurm jobs did not start: {result.reason}"]
    once = result.facts.get("keeper_once", "")
    return [] if once == "ok" else [f"{inventory.slurm_host.name}: the keeper: {once or 'no answer'}"]


def said(facts):
    """``(keeper state, {group: its last decision})`` of a ``keeper_said`` report's *facts*:
    the state ``running``, ``gaveup`` or ``none``; each decision ``{"at": time, "decision":
    text, "running": N, "pending": N}`` (its jobs, as the keeper last saw them), of what the
    keeper wrote (only what has that form)."""
    try:
        decisions = json.loads(facts.get("keeper_state") or "{}")
    except ValueError:
        decisions = {}
    kept = {}
    for group, d in (decisions if isinstance(decisions, dict) else {}).items():
        if isinstance(d, dict) and isinstance(d.get("at"), (int, float)) and isinstance(
                d.get("decision"), str) and isinstance(d.get("jobs", {}), dict):
            states = [str(state) for state in d.get("jobs", {}).values()]
            kept[group] = {"at": d["at"], "decision": d["decision"],
                           "running": states.count("RUNNING"), "pending": states.count("PENDING")}
    return facts.get("keeper", "none"), kept
