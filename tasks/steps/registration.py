"""
The steps of waiting for engines to register: ask the controller (the probe on the master)
until each host has its count, and start again at once each engine whose registration the
controller dropped (an orphan), as ``cluster.up``, ``engines.start`` and the Slurm
allocations do.
"""

import time

from .. import commands
from ..commands.answers import parse_probe
from ..remote.shared.screen_logs import engine_uuid

#: Extra seconds a command may take beyond the wait it does itself.
SLACK = 30


def _script(inventory, host, *steps):
    return commands.script(inventory.settings, *steps, setup=host.setup)


def wait_renewing(fleet, inventory, up, jupyter, stream, just_started, plan=(), waited=None):
    """
    `wait_for_engines` for *up*'s expected engines (or *waited*: those and more), starting
    each orphan (an engine whose registration the controller dropped, see
    `tasks.remote.master.probe.orphans`) of an engine host again at once, until all registered or
    ENGINE_TIMEOUT passed; records them in ``up.renewed``. *plan*: steps for the master
    before the first wait (``write_plan``).
    """
    deadline = time.monotonic() + inventory.settings.engine_timeout
    known = []
    while True:
        wait = max(0.0, deadline - time.monotonic())
        result, probe = wait_for_engines(fleet, inventory, up.expected if waited is None else waited,
                                         wait, jupyter, stream, just_started, known, plan)
        plan = ()
        fresh = [uuid for uuid in (probe or {}).get("orphans", []) if uuid not in known]
        if not fresh or time.monotonic() >= deadline:
            return result, probe
        known += fresh
        for name, numbers in renew_orphans(fleet, inventory, fresh).items():
            up.renewed.setdefault(name, []).extend(numbers)


def renew_orphans(fleet, inventory, uuids):
    """Start the engines of *uuids* (orphans, ``LABEL/N/TIME/RANDOM``) again, each host's in
    one command; ``{host name: [N, ...]}`` of those whose supervisor was told. A uuid of
    another form (`engine_uuid`) is none of an engine's: it is left alone."""
    numbers = {}
    for label, number, _ in filter(None, map(engine_uuid, uuids)):
        numbers.setdefault(label, []).append(number)
    hosts = {host: numbers[host.name] for host in inventory.engines if host.name in numbers}
    results = fleet.run({host: _script(inventory, host, commands.renew_engines(found))
                         for host, found in hosts.items()}, SLACK)
    return {name: [int(n) for n in result.facts.get("renewed", "").split()]
            for name, result in results.items() if result.ok and result.facts.get("renewed")}


def shortfalls(expected, registered):
    """``{host name: (registered, expected)}`` for the hosts whose count is not as expected."""
    return {name: (registered.get(name, 0), want) for name, want in expected.items()
            if registered.get(name, 0) != want}


def wait_for_engines(fleet, inventory, expected, wait, jupyter=False, progress=None,
                     started=False, known_orphans=(), before=()):
    """
    Wait up to *wait* s until each host has its ``expected[name]`` engines registered
    (and, with *jupyter*, until Jupyter answers or ends; *started*: it was just started),
    or until an orphan not in *known_orphans* is found among those hosts' engines.
    *progress* receives the probe's output as it comes (see `tasks.show.progress`);
    *before*: steps the master runs first, in the same round trip.

    :returns: the master's `HostResult` and the probe's report (None if it failed).
    """
    probe = commands.probe(inventory.settings, expected=expected, wait=wait, jupyter=jupyter,
                           started=started, known_orphans=known_orphans)
    result = fleet.run({inventory.master: _script(inventory, inventory.master, *before, probe)},
                       wait + SLACK, progress)
    master_result = result[inventory.master.name]
    return master_result, parse_probe(master_result.facts)
