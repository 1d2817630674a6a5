"""
The check before a start (``cluster.check``, and the first step of ``cluster.up``):
read every host's facts in one round trip and judge them (`tasks.checks`).
"""

from dataclasses import dataclass

from . import address, checks, commands
from .lifecycle import SLACK


def read_facts(fleet, inventory, hosts):
    """Read each host's facts (cores, memory, versions, ...) in one round trip; with them,
    where each host sees fab's SSH come from (``peer_address``, see `tasks.address`)."""
    port = inventory.settings.jupyter_port
    return fleet.run({host: commands.script(inventory.settings, commands.facts(
        port if host == inventory.master else None), commands.peer_address())
        for host in hosts}, SLACK)


def check_problems(inventory, results):
    """The problems a preflight check finds, ``{host name: [problem, ...]}``, from `read_facts`."""
    master = results.get(inventory.master.name)
    master_facts = master.facts if master is not None and master.ok else {}
    found = {}
    for name, result in results.items():
        problems = [result.reason] if not result.ok else checks.problems(
            result.facts, master_facts, inventory.settings)
        if problems:
            found[name] = problems
    try:
        address.controller_address(inventory, address.peers_from(inventory, results))
    except address.AddressError as error:
        found.setdefault(inventory.master.name, []).append(str(error))
    return found


@dataclass
class Preflight:
    """What the check before a start found: problems per host, cores, and how each answered."""

    problems: dict  # host name -> [problem, ...], only for hosts that have some
    cores: dict     # host name -> cores, for the hosts without ``engines=``
    states: dict    # host name -> the state of its facts' `HostResult` (ok, unreachable, ...)
    peers: dict     # engine host name -> where it sees fab's SSH come from

    def skipped(self, hosts):
        """``{name: (state, why)}`` of *hosts* that cannot be started (state: skipped when reachable)."""
        return {h.name: (self.states[h.name] if self.states[h.name] != "ok" else "skipped",
                         "; ".join(self.problems[h.name])) for h in hosts if h.name in self.problems}


def preflight(fleet, inventory):
    """Check every host before a start, in one round trip that also reads their cores."""
    facts = read_facts(fleet, inventory, inventory.hosts)
    cores = {name: int(r.facts["cores"]) for name, r in facts.items() if r.facts.get("cores")}
    states = {name: r.state for name, r in facts.items()}
    return Preflight(check_problems(inventory, facts), cores, states,
                     address.peers_from(inventory, facts))
