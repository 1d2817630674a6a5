"""
Tasks for the engines: ``ipengine`` processes on every engine host of the inventory.
"""

from fabric import task
from invoke import Collection

from . import lifecycle, report
from .context import fleet, load
from .progress import EngineProgress, ProgressStream


def bring_up(fleet_, inventory, restart=False, jupyter=False, hosts=None, cores=None,
             master_result=None):
    """
    Start the missing engines on every engine host (or *hosts*), then wait until
    they registered (and, with *jupyter*, until Jupyter answers on the master).
    *master_result* is what starting the master returned, if it was just started.

    :returns: the ``host: reason`` lines of what fell short (empty when all is well).
    """
    settings = inventory.settings
    hosts = inventory.engines if hosts is None else hosts
    engine_file = None
    if not settings.shared_home:
        engine_file = lifecycle.read_engine_file(fleet_, inventory, master_result)
        if engine_file is None:
            return [f"{inventory.master.name}: cannot read the controller's connection file: "
                    "is the controller up?"]
    results = lifecycle.start_engines(fleet_, inventory, hosts, restart, cores, engine_file)
    expected = {name: int(r.facts["expected"]) for name, r in results.items() if r.ok}
    problems = report.failures(results)
    if not expected:
        return problems
    with EngineProgress(expected) as progress:
        master_result, probe = lifecycle.wait_for_engines(
            fleet_, inventory, expected, settings.engine_timeout, jupyter, ProgressStream(progress))
    if probe is None:
        return problems + [f"{inventory.master.name}: cannot ask the controller: "
                           f"{master_result.reason or 'no answer'}"]
    registered = probe["engines"]
    report.engines_table(expected, registered)
    for name, want in expected.items():
        have = registered.get(name, 0)
        if have != want:
            problems.append(
                f"{name}: {have} of {want} engines registered after "
                f"{settings.engine_timeout:g} s; see the logs in "
                f"~/.ipp-cluster/{settings.cluster_name}/<hostname>/ on that host")
    if jupyter and not probe["jupyter"]:
        problems.append(f"{inventory.master.name}: Jupyter does not answer on 127.0.0.1:"
                        f"{settings.jupyter_port}; see its log, {settings.cluster_name}-jupyter.log")
    if probe["error"]:
        problems.append(f"{inventory.master.name}: controller: {probe['error']}")
    return problems


def bring_down(fleet_, inventory):
    """Stop every engine on every engine host; returns the problems."""
    results = lifecycle.stop_engines(fleet_, inventory, inventory.engines)
    report.results_table("engines stopped", results, [("engines left", "left_engine")])
    return report.failures(results)


@task
def start(c):
    """Start the engines missing on each engine host; return when all have registered."""
    inventory = load()
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_up(fleet_, inventory))


@task
def stop(c):
    """Stop every engine on every engine host; no engine process is left."""
    inventory = load()
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_down(fleet_, inventory))


@task
def restart(c):
    """Stop every engine, start them again and return when they have registered."""
    inventory = load()
    with fleet(c, inventory) as fleet_:
        report.fail_if(bring_down(fleet_, inventory) + bring_up(fleet_, inventory))


@task
def status(c):
    """Show the engines running and registered per host; exit 0 only if all are."""
    inventory = load()
    with fleet(c, inventory) as fleet_:
        rows = lifecycle.read_status(fleet_, inventory, master=False).rows
    report.status_and_exit("engines", rows)


ns = Collection("engines", start, stop, restart, status)
