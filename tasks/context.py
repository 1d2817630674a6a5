"""
What every task starts with: the inventory, read before any host is contacted,
and a `Fleet` of connections configured from Fabric's own config (``-i``,
``--ssh-config``, ``-t`` and friends are honoured).
"""

import sys
from dataclasses import replace

from invoke.exceptions import Exit

from .inventory.folder import InventoryError, load_inventory, parse_host, with_settings
from .ssh.fleet import Fleet

#: What ``fab -h TASK`` says of the inventory, for every task that reads it.
INVENTORY_NOTE = """
    Reads the inventory folder $CLUSTER_INVENTORY (default: inventory/ in the
    project): hosts, hosts.yml or hosts.json (which host plays which role) and
    cluster.env (the settings).
"""


def reads_inventory(function):
    """Say in *function*'s docstring (shown by ``fab -h TASK``) where the inventory comes from."""
    function.__doc__ = (function.__doc__ or "").rstrip() + "\n" + INVENTORY_NOTE
    return function


def load(master=None):
    """
    Read the inventory (``$CLUSTER_INVENTORY`` or ``inventory/``), or exit with its error.

    :param master: a host string that replaces the inventory's master (``fab -H``).
    """
    try:
        inventory = load_inventory()
        if master is not None:
            host = with_settings(parse_host(master, "-H", 0), inventory.settings)
            inventory = replace(inventory, master=host)
    except InventoryError as error:
        raise Exit(f"error: {error}", code=2) from None
    for line in inventory.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return inventory


def fleet(c, inventory):
    """A `Fleet` for *inventory*, using the task context's Fabric config."""
    return Fleet(inventory.settings, c.config)


def whole_number(option, value, low, high):
    """The value of a command-line *option* as a whole number from *low* to *high*, or exit 2."""
    text = str(value).strip()
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise Exit(f"error: --{option}={value}: must be a whole number from {low} to {high}",
                   code=2)
    return int(text)


#: The help of every ``--hosts`` option.
HOSTS_HELP = "only these hosts: comma-separated inventory names or patterns (node0*)"
JSON_HELP = "one JSON document on stdout instead of the table (its schema: README, JSON for programs)"


def choose(inventory, role="", hosts=""):
    """The hosts that ``--role`` and ``--hosts`` (comma-separated names or patterns) choose,
    or exit 2 naming the bad option."""
    if role not in ("", "master", "engines"):
        raise Exit(f"error: --role={role}: must be master or engines", code=2)
    try:
        return inventory.select(role or None, [h for h in hosts.split(",") if h])
    except ValueError as error:
        raise Exit(f"error: --hosts={hosts}: {error}", code=2) from None
