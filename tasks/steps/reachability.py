"""
Whether each engine host reaches the controller's ports (``cluster.check``), so that a user
learns of a firewall in the way before the engines wait in vain for their registration.

Only while the controller runs: its ports are then known (its engine connection file, read
on the master) and something listens on each, so that a port refused or unanswered from
an engine host is the network's doing. Before it runs there is nothing to connect to, and
the ports are drawn at its start (free ones of ``CONTROLLER_PORTS``, or any): the check
then says nothing of them, and ``cluster.up`` followed by ``cluster.check`` tests them.
With the controller in a Slurm job (``slurm_master``) it is not checked: the master as the
inventory names it is then a login node, not where the controller runs.
"""

from .. import commands
from .registration import SLACK

#: Seconds that a connect to one port may take before it counts as unanswered.
TIMEOUT = 3


def controller_ports(fleet, inventory):
    """``(address, [port, ...])`` where the engines connect to the running controller, or None
    when it does not run (or the master did not answer)."""
    master = inventory.master
    result = fleet.run({master: commands.script(inventory.settings, commands.controller_ports(),
                                                setup=master.setup)}, SLACK)[master.name]
    words = result.facts.get("controller_ports", "").split() if result.ok else []
    if len(words) < 2 or not all(word.isdigit() for word in words[1:]):
        return None
    return words[0], [int(word) for word in words[1:]]


def problem(unreachable, timeout=TIMEOUT):
    """The line that says which of the controller's ports a host does not reach, from its
    ``unreachable=`` report (``ADDRESS:PORT/WHY ...``), or ''."""
    said = {"timeout": f"no answer in {timeout:g} s"}
    ports = [f"{where} ({said.get(why, why)})" for where, _, why in
             (word.partition("/") for word in unreachable.split())]
    if not ports:
        return ""
    return (f"cannot reach the controller at {', '.join(ports)}: the engines of this host would"
            " never register; let this host reach those ports of the master in the firewall"
            " (CONTROLLER_PORTS in cluster.env puts them all in one range)")


def check(fleet, inventory, facts):
    """``{engine host name: [problem]}`` for each engine host whose facts (*facts*, from
    `preflight.read_facts`) came back and that does not reach every port of the running
    controller; {} when it does not run (see the module)."""
    if inventory.master_allocation is not None:
        return {}
    hosts = [host for host in inventory.engines if facts.get(host.name) and facts[host.name].ok]
    found = controller_ports(fleet, inventory) if hosts else None
    if found is None:
        return {}
    address, ports = found
    step = commands.reach(address, TIMEOUT, ports)
    results = fleet.run({host: commands.script(inventory.settings, step, setup=host.setup)
                         for host in hosts}, SLACK + TIMEOUT)
    problems = {}
    for name, result in results.items():  # a host that failed here: its facts say why
        said = problem(result.facts.get("unreachable", "")) if result.ok else ""
        if said:
            problems[name] = [said]
    return problems
