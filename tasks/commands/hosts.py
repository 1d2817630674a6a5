"""
The steps any host runs (``tasks/remote/steps/any/``): its facts, a user's command, the
logs, where this connection comes from.
"""

from .script import Step
from .shipped import program


def peer_address():
    """Report ``peer_address=``: where the host sees this SSH connection come from."""
    return Step("peer_address")


def user_command(command):
    """A user's shell command, run as it is written by ``sh`` on the host."""
    return Step("user_command", (command,))


def tail_logs(roles, lines):
    """Print the last *lines* of the logs of *roles* (controller, jupyter, engine)."""
    return Step("tail_logs", (int(lines), *roles))


def facts(port=None, gpus=None, engines=None, interface=None, ports=None):
    """Report the host's facts (see ``tasks/remote/steps/any/facts.sh``); with *port*, who holds it;
    with *gpus* and *engines* (the inventory's), the GPUs it names and how many engines
    would start; with *interface* (``CONTROLLER_INTERFACE``), its address there and all its
    IPv4 addresses; with *ports* (``LOW-HIGH``: ``CONTROLLER_PORTS``), who listens in that
    range while the cluster's controller does not run."""
    return Step("facts", (port or "", gpus or "", engines or "", interface or "", ports or ""),
                program("shared/versions.py"))


def reach(address, timeout, ports):
    """Report ``reached=`` and ``unreachable=`` (``ADDRESS:PORT/WHY ...``): a TCP connect from the
    host to each of *ports* of the controller's *address*, *timeout* s each, all at once
    (``shared/reach.py``)."""
    return Step("reach", (address, timeout, *ports), program("shared/reach.py"))
