"""
The steps of bringing a cluster up and down, shared by the task namespaces.

Each step builds one command per host (`tasks.commands`), runs them all in one
parallel round trip (`tasks.ssh.fleet.Fleet`) and returns per-host results. Steps
never print and never exit: tasks decide what to show (`tasks.show.report`).
"""

import base64
from contextlib import nullcontext
from dataclasses import dataclass, field

from .. import commands
from ..commands import slurm
from ..commands.answers import parse_probe
from ..commands.master import HALT
from ..ssh.fleet import FAILED, HostResult
from . import address, examples
from .registration import SLACK, shortfalls, wait_renewing

def _script(inventory, host, *steps):
    return commands.script(inventory.settings, *steps, setup=host.setup)


def read_peer_addresses(fleet, inventory):
    """``{engine host: address}``: where each remote engine host sees fab's SSH come from."""
    hosts = address.remote_engines(inventory)
    results = fleet.run({host: _script(inventory, host, commands.peer_address()) for host in hosts}, SLACK)
    return address.peers_from(inventory, results)


def engine_count(inventory, planned=None):
    """How many engines the cluster will start: what each host *planned* (``{host name:
    count}``, see `tasks.steps.preflight.planned`: ``engines=``, else one per GPU of
    ``gpus=``, else one per core), else its ``engines=``, else 1; and on each node of a Slurm
    allocation its ``engines=``, else 1 (Slurm's share of a node by default: one CPU)."""
    planned = planned or {}
    return (sum(planned.get(host.name) or host.engines or 1 for host in inventory.engines)
            + sum(a.nodes * (a.engines or 1) for a in inventory.allocations))


def start_master(fleet, inventory, master, wait_jupyter=False, peers=None, planned=None):
    """
    Start what is missing on *master*, and put the example notebooks there. With
    *wait_jupyter*, wait until Jupyter answers, or ends (see `judge_jupyter`). *peers*
    (from `read_peer_addresses`) are read here when the controller's address needs them.
    *planned* (see `engine_count`) size the controller's heartbeat to the cluster.

    :returns: the master's `HostResult` (with ``token`` and ``controller_address``).
    """
    settings = inventory.settings
    if peers is None and address.needs_peer_addresses(inventory):
        peers = read_peer_addresses(fleet, inventory)
    try:
        listen = address.controller_address(inventory, peers)
    except address.AddressError as error:
        return HostResult(master, FAILED, reason=str(error))
    steps = [commands.put_examples(settings, examples.packed()),
             commands.start_master(settings, listen, engine_count(inventory, planned))]
    if not settings.shared_home:
        steps.append(commands.read_engine_file())
    if wait_jupyter:
        steps.append(commands.probe(settings, wait=settings.engine_timeout, controller=False,
                                    started=True))
    result = fleet.run({master: _script(inventory, master, *steps)}, 2 * settings.engine_timeout + SLACK)
    result = result[master.name]
    if wait_jupyter and result.ok:
        judge_jupyter(result, parse_probe(result.facts))
    return result


def judge_jupyter(master_result, probe):
    """Fail *master_result* (of `start_master`) when the probe says Jupyter does not answer."""
    problem = probe["jupyter_problem"] if probe else "the master's probe gave no answer"
    if problem:
        master_result.state, master_result.reason = FAILED, problem
        master_result.facts["jupyter"] = "FAILED"
    elif master_result.facts.get("jupyter"):
        master_result.facts["jupyter"] += ", answers"
    return master_result


def stop_master(fleet, inventory, master):
    """Stop the controller and Jupyter on *master*; returns its `HostResult`."""
    result = fleet.run({master: _script(inventory, master, commands.stop_master())}, 2 * HALT + SLACK)
    return _check_left(result)[master.name]


def start_engines(fleet, inventory, hosts, restart=False, planned=None, engine_file=None):
    """
    Start the missing engines on *hosts*; each result's facts hold ``expected``.

    *planned* (``{host name: engines}``, see `tasks.steps.preflight.planned`) saves the
    hosts without ``engines=`` from counting their cores again. Without a shared home,
    *engine_file* (the controller's connection file, see `read_engine_file`) is
    written on each host first.
    """
    planned = planned or {}
    first = [] if inventory.settings.shared_home else [commands.write_engine_file(engine_file)]
    scripts = {host: _script(inventory, host, *first, commands.start_engines(
        inventory.settings, host, planned.get(host.name), restart))
        for host in hosts}
    return fleet.run(scripts, inventory.settings.engine_timeout + SLACK)


@dataclass
class EnginesUp:
    """What bringing engines up did: each host's start, then the controller's count."""

    started: dict                                  # host name -> `HostResult` of the start
    expected: dict = field(default_factory=dict)   # host name -> engines wanted there
    registered: dict = None                        # host name -> engines registered; None: unknown
    renewed: dict = field(default_factory=dict)    # host name -> numbers of the orphans started again
    problems: list = field(default_factory=list)   # ``host: reason`` lines of what fell short
    skipped: dict = field(default_factory=dict)    # host name -> (state, why) it was not started


def engines_up(fleet, inventory, hosts, restart=False, planned=None, master_result=None,
               watch=None, skipped=None, also=None):
    """
    Start the missing engines on *hosts*, then wait until they registered. With
    *master_result* (what `start_master` returned), also wait until Jupyter answers,
    and judge it (`judge_jupyter`). ``watch(expected)``, if given, is a context manager
    giving a stream for the probe's progress lines (see `tasks.show.progress`). *skipped*
    (``{host name: (state, reason)}``) are engine hosts left out, shown as such. *also*
    (``{label: count}``: a Slurm job's nodes) are waited for in the same wait, and judged
    by their caller (from ``registered``, which counts every label).

    :returns: an `EnginesUp`.
    """
    settings, master = inventory.settings, inventory.master.name
    jupyter = master_result is not None
    engine_file = None
    if not settings.shared_home:
        engine_file = read_engine_file(fleet, inventory, master_result)
        if engine_file is None:
            return EnginesUp({}, problems=[f"{master}: cannot read the controller's connection"
                                           " file: is the controller up?"])
    started = start_engines(fleet, inventory, hosts, restart, planned, engine_file)
    up = EnginesUp(started, {name: int(r.facts["expected"]) for name, r in started.items() if r.ok},
                   problems=[f"{name}: {r.reason}" for name, r in started.items() if not r.ok],
                   skipped=dict(skipped or {}))
    waited = {**up.expected, **(also or {})}
    if not waited and not jupyter:
        return up
    with watch(waited) if watch and waited else nullcontext() as stream:
        just_started = jupyter and master_result.facts.get("jupyter") == "started"
        plan = [commands.write_plan(name, r.facts) for name, r in started.items() if r.ok]
        result, probe = wait_renewing(fleet, inventory, up, jupyter, stream, just_started, plan,
                                       waited)
    if jupyter:
        judge_jupyter(master_result, probe)
    if probe is None:
        up.problems.append(f"{master}: cannot ask the controller: {result.reason or 'no answer'}")
        return up
    up.registered = probe["engines"]
    for name, (have, want) in shortfalls(up.expected, up.registered).items():
        up.problems.append(f"{name}: {have} of {want} engines registered after "
                           f"{settings.engine_timeout:g} s; see the logs in "
                           f"~/.ipp-cluster/{settings.cluster_name}/<hostname>/ on that host")
    if jupyter and not master_result.ok:
        up.problems.append(f"{master}: {master_result.reason}")
    if probe["error"]:
        up.problems.append(f"{master}: controller: {probe['error']}")
    return up


def read_token(fleet, inventory):
    """
    The master's `HostResult` with the Jupyter token in its ``token`` fact; failed,
    saying why, when Jupyter does not answer (a URL would lead nowhere).
    """
    script = _script(inventory, inventory.master, commands.read_token(),
                     commands.probe(inventory.settings, controller=False))
    result = fleet.run({inventory.master: script}, SLACK)[inventory.master.name]
    return judge_jupyter(result, parse_probe(result.facts)) if result.ok else result


def read_engine_file(fleet, inventory, master_result=None):
    """
    The controller's engine connection file, read from the master.

    *master_result*, from `start_master`, holds it already when there is no shared home.
    """
    if master_result is None or "engine_file" not in master_result.facts:
        script = _script(inventory, inventory.master, commands.read_engine_file())
        master_result = fleet.run({inventory.master: script}, SLACK)[inventory.master.name]
    if not master_result.ok or not master_result.facts.get("engine_file"):
        return None
    return base64.b64decode(master_result.facts["engine_file"]).decode()


def stop_engines(fleet, inventory, hosts, graceful=True):
    """
    Stop every engine on *hosts*, so that no engine process is left on them.

    With *graceful*, the controller first asks those engines to shut down, so
    that it drops them at once instead of after missed heartbeats.
    """
    if graceful:
        probe = commands.probe(inventory.settings, shutdown=[h.name for h in hosts],
                               jupyter=False)
        fleet.run({inventory.master: _script(inventory, inventory.master, probe)}, SLACK)
    scripts = {host: _script(inventory, host, commands.stop_engines()) for host in hosts}
    return _check_left(fleet.run(scripts, HALT + SLACK))


def stop_all(fleet, inventory):
    """Stop engines, controller and Jupyter on every host at once; where Slurm's commands run,
    the keeper of the jobs stops, then every Slurm job the cluster recorded ends too: on the master, told before the controller
    stops and waited for after, in the same round trip (see `tasks.steps.slurm.allocations.cancelled`
    for what its result then says); with the master on a job's node (``slurm_master``), after
    the controller stopped there, from the login node, whose result is added."""
    parts = {host: [] for host in inventory.hosts}
    for host in inventory.engines:
        parts[host].append(commands.stop_engines())
    login = inventory.login
    keeper = [slurm.stop_keeper()]  # before it renews a job; also one left by allocations removed since
    if login is None:
        parts[inventory.master] += [*keeper, slurm.cancel_all(), commands.stop_master(),
                                    slurm.cancelled_all()]
    else:  # ending the job first could end this very session on the node (pam_slurm_adopt)
        parts[inventory.master].append(commands.stop_master())
    scripts = {host: _script(inventory, host, *p) for host, p in parts.items()}
    results = _check_left(fleet.run(scripts, 3 * HALT + SLACK))  # the master's: three roles
    if login is not None:
        results.update(_check_left(fleet.run({login: _script(
            inventory, login, *keeper, slurm.cancel_all(), slurm.cancelled_all())}, HALT + SLACK + 60)))
    return results


def _check_left(results):
    """A stop that left a process behind (``left_<role>`` > 0) has failed."""
    for result in results.values():
        left = {k: v for k, v in result.facts.items() if k.startswith("left_") and v != "0"}
        if result.ok and left:
            result.state = FAILED
            result.reason = "processes left after the stop: " + ", ".join(
                f"{k[5:]}={v}" for k, v in left.items())
    return results
