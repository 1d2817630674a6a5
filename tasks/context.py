"""
What every task starts with: the inventory, read before any host is contacted,
and a `Fleet` of connections configured from Fabric's own config (``-i``,
``--ssh-config``, ``-t`` and friends are honoured).
"""

from dataclasses import replace

from invoke.exceptions import Exit

from .inventory import InventoryError, load_inventory, parse_host
from .runner import Fleet


def load(master=None):
    """
    Read the inventory (``$CLUSTER_INVENTORY`` or ``inventory/``), or exit with its error.

    :param master: a host string that replaces the inventory's master (``fab -H``).
    """
    try:
        inventory = load_inventory()
        if master is not None:
            inventory = replace(inventory, master=parse_host(master, "-H", 0))
    except InventoryError as error:
        raise Exit(f"error: {error}", code=2) from None
    return inventory


def fleet(c, inventory):
    """A `Fleet` for *inventory*, using the task context's Fabric config."""
    return Fleet(inventory.settings, c.config)
