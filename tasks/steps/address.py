"""
Where the controller listens, which is also where the engines reach it: pure functions.

The controller binds one address, never every interface: engines connect to the
address it binds (ipyparallel keeps an explicit address as it is), so it must be
one that every engine host reaches, and nothing else of the master's is opened:

- ``CONTROLLER_ADDRESS`` from ``cluster.env``, when set;
- with ``CONTROLLER_INTERFACE`` (an interface's name, or a network), the master's first
  IPv4 address on that interface or in that network, which the master picks itself
  (`INTERFACE`; ``interface_address`` in ``steps/lib.sh``): a login node of several
  networks, where the engines reach only one;
- ``127.0.0.1`` when every engine runs on the master itself (and no Slurm allocation has any);
- with the controller in a Slurm job (``slurm_master``), the address that fab's SSH
  connection to the job's node came in on there (`FROM_SSH`), which is how the cluster's
  network reaches that node;
- the master's address that fab's own SSH connection came in on (`FROM_SSH`, read on
  the master from ``SSH_CONNECTION``), when fab runs elsewhere: the engine hosts
  are expected to reach the master as fab does;
- when fab runs on the master (``localhost`` in the inventory), the address the
  engine hosts see fab's SSH connections come from (`PEER` on each of them),
  which is this machine as they reach it. If they see different addresses, there
  is no one answer: the user must say it.
"""

LOOPBACK = "127.0.0.1"

#: Tells ``start_master.sh`` to use the address its SSH connection came in on.
FROM_SSH = "ssh"

#: Before ``CONTROLLER_INTERFACE``: tells ``start_master.sh`` to pick its address there.
INTERFACE = "interface="


class AddressError(ValueError):
    """No single address of the master serves every engine host: the message says what to set."""


def remote_engines(inventory):
    """The engine hosts that are not the master itself."""
    return tuple(host for host in inventory.engines if host.name != inventory.master.name)


def needs_peer_addresses(inventory):
    """True when the address can only come from the engine hosts (fab runs on the master)."""
    return (not inventory.settings.controller_address
            and not inventory.settings.controller_interface and inventory.master.is_local
            and inventory.master_allocation is None and bool(remote_engines(inventory)))


def controller_address(inventory, peers=None):
    """
    The address for the controller of *inventory* (an address, `FROM_SSH`, or `INTERFACE`
    and the interface or network of ``CONTROLLER_INTERFACE``).

    :param peers: ``{engine host name: address}``, where each engine host saw fab's SSH
        connection come from (see `needs_peer_addresses`); hosts that did not answer
        are left out.
    :raises AddressError: when the engine hosts disagree, or none answered.
    """
    if inventory.settings.controller_address:
        return inventory.settings.controller_address
    if inventory.settings.controller_interface:
        return INTERFACE + inventory.settings.controller_interface
    remote = remote_engines(inventory)
    if not remote and not inventory.allocations:
        return LOOPBACK
    if not inventory.master.is_local or inventory.master_allocation is not None:
        return FROM_SSH
    seen = sorted({address for address in (peers or {}).values() if address})
    if len(seen) == 1:
        return seen[0]
    if not remote:
        raise AddressError("fab runs on the master, and the Slurm nodes cannot say at which "
                           "address they reach it: set CONTROLLER_ADDRESS in cluster.env to this "
                           "machine's address on the compute nodes' network")
    if not seen:
        raise AddressError("no engine host answered, so none could say at which address it "
                           "reaches this machine: set CONTROLLER_ADDRESS in cluster.env to this "
                           "machine's address on the engines' network")
    views = ", ".join(f"{name} sees {address}" for name, address in (peers or {}).items())
    raise AddressError(f"the engine hosts reach this machine at different addresses ({views}): "
                       "set CONTROLLER_ADDRESS in cluster.env to the one they all reach")


def peers_from(inventory, results):
    """``{engine host: address}`` from the ``peer_address`` facts of the remote engine
    hosts in *results* (per-host results of a step that ran ``peer_address``)."""
    remote = {host.name for host in remote_engines(inventory)}
    return {name: r.facts.get("peer_address") for name, r in results.items()
            if name in remote and r.ok}
