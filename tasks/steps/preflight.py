"""
The check before a start (``cluster.check``, and the first step of ``cluster.up``):
read every host's facts (``tasks/remote/steps/any/facts.sh``) in one round trip, then judge
them with pure functions: `judge` compares one host's facts with the master's and
says what is wrong and what to do about it.
"""

import difflib
import posixpath
import re
from dataclasses import dataclass

from .. import commands
from . import address
from .lifecycle import engine_count
from .registration import SLACK


def read_facts(fleet, inventory, hosts):
    """Read each host's facts (cores, memory, versions, ...) in one round trip; with them,
    where each host sees fab's SSH come from (``peer_address``, see `tasks.steps.address`).
    On the master, Jupyter's port is checked free, the address that ``CONTROLLER_INTERFACE``
    names read, and who holds ports of ``CONTROLLER_PORTS``; not when Jupyter runs in a job
    (``slurm_master``): the master is then a login node, whose ports and addresses are not
    the job's node's."""
    return fleet.run({host: commands.script(inventory.settings, _facts(inventory, host),
                                            commands.peer_address(), setup=host.setup)
                      for host in hosts}, SLACK)


def _facts(inventory, host):
    """The facts step of *host*: the master's (but a job's node's) with what it alone is asked."""
    settings = inventory.settings
    if host != inventory.master or inventory.master_allocation:
        return commands.facts(None, host.gpus, host.engines)
    ports = "%d-%d" % settings.controller_ports if settings.controller_ports else None
    return commands.facts(settings.jupyter_port, host.gpus, host.engines,
                          settings.controller_interface, ports)


def check_problems(inventory, results):
    """The problems a preflight check finds, ``{host name: [problem, ...]}``, from `read_facts`."""
    master = results.get(inventory.master.name)
    master_facts = master.facts if master is not None and master.ok else {}
    found = {}
    for name, result in results.items():
        problems = [result.reason] if not result.ok else judge(
            result.facts, master_facts, inventory.settings)
        if problems:
            found[name] = problems
    too_few = open_files_problem(master_facts, engine_count(inventory, planned(results)))
    if too_few:
        found.setdefault(inventory.master.name, []).append(too_few)
    unmatched = interface_problem(inventory, master_facts)
    if unmatched:
        found.setdefault(inventory.master.name, []).append(unmatched)
    ports = ports_problem(inventory.settings, master_facts)
    if ports:
        found.setdefault(inventory.master.name, []).append(ports)
    try:
        address.controller_address(inventory, address.peers_from(inventory, results))
    except address.AddressError as error:
        found.setdefault(inventory.master.name, []).append(str(error))
    return found


@dataclass
class Preflight:
    """What the check before a start found: problems per host, engines planned, and how each
    answered."""

    problems: dict  # host name -> [problem, ...], only for hosts that have some
    planned: dict   # host name -> engines it would start (see `planned`)
    states: dict    # host name -> the state of its facts' `HostResult` (ok, unreachable, ...)
    peers: dict     # engine host name -> where it sees fab's SSH come from

    def skipped(self, hosts):
        """``{name: (state, why)}`` of *hosts* that cannot be started (state: skipped when reachable)."""
        return {h.name: (self.states[h.name] if self.states[h.name] != "ok" else "skipped",
                         "; ".join(self.problems[h.name])) for h in hosts if h.name in self.problems}


def preflight(fleet, inventory):
    """Check every host before a start, in one round trip that also reads how many engines
    each would start."""
    facts = read_facts(fleet, inventory, inventory.hosts)
    states = {name: r.state for name, r in facts.items()}
    return Preflight(check_problems(inventory, facts), planned(facts), states,
                     address.peers_from(inventory, facts))


def planned(results):
    """``{host name: engines}`` that each host's facts (`read_facts`) say it would start:
    ``engines=``, else one per GPU of ``gpus=``, else one per core."""
    return {name: int(r.facts["engines"]) for name, r in results.items()
            if r.facts.get("engines", "").isdigit()}


#: Open files the controller's busiest process holds for itself, and per engine (2.4
#: measured at 120 engines).
FILES_BASE, FILES_PER_ENGINE = 50, 2.5


def open_files_problem(master_facts, engines):
    """What is wrong when the master's hard limit of open files cannot hold *engines*
    (the controller raises its soft limit to the hard one, and no further), or ''."""
    hard = master_facts.get("open_files_hard", "")
    needed = int(FILES_BASE + FILES_PER_ENGINE * engines)
    if not hard.isdigit() or int(hard) >= needed:
        return ""
    return (f"the master allows {hard} open files (its hard limit, ulimit -Hn) but the controller"
            f" of {engines} engines needs about {needed}: raise nofile for your user in"
            " /etc/security/limits.conf there, or start fewer engines")


#: The ports ipyparallel's controller listens on (9.x, one level of broadcast schedulers,
#: its default): 9 for the engines (registration, control, mux, task, iopub, the two of the
#: heartbeat, the 2 leaf broadcast schedulers), 6 more for the clients (control, mux, task,
#: iopub, notification, broadcast), 3 of its own (the monitor's, and the 2 inner broadcast
#: schedulers' on 127.0.0.1); with the host inbox's (``master/host_inbox.py``), 19; and
#: Jupyter's: 20, whatever the number of engines.
CONTROLLER_PORTS_NEEDED = 9 + 6 + 3 + 1
PORTS_NEEDED = CONTROLLER_PORTS_NEEDED + 1


def interface_problem(inventory, master_facts):
    """What is wrong when no IPv4 address of the master matches ``CONTROLLER_INTERFACE`` (its
    facts say ``interface_address=`` empty, and the addresses it has), or ''."""
    spec = inventory.settings.controller_interface
    if not spec or master_facts.get("interface_address", "-"):
        return ""
    return (f"CONTROLLER_INTERFACE={spec} matches no IPv4 address of the master, which has"
            f" {master_facts.get('ipv4_addresses') or 'none'}: name one of its interfaces, or a"
            " network of one of those addresses, in cluster.env")


_TAKEN_RE = re.compile(r"^([0-9]{1,5}):([A-Za-z0-9_.-]{1,64})$")


def ports_problem(settings, master_facts=None):
    """What is wrong when ``CONTROLLER_PORTS`` holds fewer ports than the cluster listens on,
    less those that other programs hold on the master (its facts' ``ports_taken=``, but
    Jupyter's port, judged apart): the controller would fail rather than take one outside
    it. Or ''."""
    if not settings.controller_ports:
        return ""
    low, high = settings.controller_ports
    taken = {}
    for word in (master_facts or {}).get("ports_taken", "").split():
        match = _TAKEN_RE.match(word)
        if match and low <= int(match[1]) <= high and int(match[1]) != settings.jupyter_port:
            taken[int(match[1])] = match[2]
    if high - low + 1 - len(taken) >= PORTS_NEEDED:
        return ""
    held = (f", but {len(taken)} of them are taken on the master ("
            + ", ".join(f"{port} by {user}" for port, user in sorted(taken.items()))
            + ") and" if taken else ", but")
    return (f"CONTROLLER_PORTS={low}-{high} holds {high - low + 1} ports{held} the cluster needs"
            f" {PORTS_NEEDED}: {CONTROLLER_PORTS_NEEDED} for the controller (registration,"
            " schedulers, heartbeats, host inbox and its own) and 1 for Jupyter: widen the range"
            " in cluster.env" + (", or free those ports" if taken else ""))


def _minor(version):
    return ".".join(version.split(".")[:2])


#: The oldest Python that tasks/cluster-requirements.txt installs into (install.sh says so too),
#: and the oldest screen (4.6: ``-Logfile``).
MIN_PYTHON, MIN_SCREEN = (3, 11), (4, 6)
_VERSION_RE = re.compile(r"^([0-9]+)\.([0-9]+)(\.[0-9]+)?$")
_SCREEN_RE = re.compile(r"^Screen version ([0-9]+)\.([0-9]+)(\.[0-9]+)? ")


def _older(match, minimum):
    """Whether the version that *match* holds (its groups: major, minor) is older than *minimum*."""
    return match is not None and (int(match[1]), int(match[2])) < minimum


def too_old(facts_, where):
    """What is too old on a host (its Python, python3 where CLUSTER_ENV is missing, screen),
    one line each, or []."""
    need = "the cluster's packages need Python %d.%d or newer" % MIN_PYTHON
    newer = "python%d.%d" % MIN_PYTHON
    found = []
    python, python3 = facts_.get("python", ""), facts_.get("python3", "")
    if _older(_VERSION_RE.match(python), MIN_PYTHON):
        found.append(f"Python {python} in {where} here, but {need}: make CLUSTER_ENV with a newer"
                     f" one (fab cluster.install --python={newer})")
    elif not python and _older(_VERSION_RE.match(python3), MIN_PYTHON):
        found.append(f"python3 is Python {python3} here, but {need}: install one and name it to"
                     f" fab cluster.install --python={newer}")
    screen = _SCREEN_RE.match(facts_.get("screen_version", ""))
    if facts_.get("screen") == "yes" and _older(screen, MIN_SCREEN):
        found.append(f"screen {screen[1]}.{screen[2]}{screen[3] or ''} here, but the cluster needs"
                     " screen %d.%d or newer (its -Logfile): upgrade it" % MIN_SCREEN)
    return found


def judge(facts_, master_facts, settings):
    """
    What is wrong on a host, each with what to do about it, given its facts and the master's.

    Python must match the master's to the minor version and ipyparallel exactly:
    a mismatch makes engines fail in obscure ways.
    """
    where = settings.cluster_env or "the PATH"
    found = []
    if facts_.get("screen") != "yes":
        found.append("screen is not installed: install it (apt-get install screen)")
    old = too_old(facts_, where)
    if facts_.get("env_exists") == "no":
        return found + [_missing_env(settings.cluster_env, facts_.get("env_siblings", "").split())] + old
    found += old
    if not facts_.get("python"):
        found.append(f"no Python in {where}: run fab cluster.install")
    missing = facts_.get("missing", "").split()
    if missing:
        found.append(f"{', '.join(missing)} missing from {where}: run fab cluster.install")
    python, master_python = facts_.get("python", ""), master_facts.get("python", "")
    if python and master_python and _minor(python) != _minor(master_python) \
            and not _older(_VERSION_RE.match(python), MIN_PYTHON):  # said by too_old
        found.append(f"Python {python} here but {master_python} on the master: "
                     "use the same Python minor version on every host")
    ipp, master_ipp = facts_.get("ipyparallel", ""), master_facts.get("ipyparallel", "")
    if python and not ipp:
        found.append(f"ipyparallel is not installed in {where}: run fab cluster.install")
    elif ipp and master_ipp and ipp != master_ipp:
        found.append(f"ipyparallel {ipp} here but {master_ipp} on the master: "
                     "install the same version everywhere (fab cluster.install)")
    if facts_.get("gpu_problem"):
        found.append(f"{facts_['gpu_problem']}: correct gpus= in the inventory, or check the"
                     " NVIDIA driver with nvidia-smi there")
    if facts_.get("port_user"):
        found.append(f"JUPYTER_PORT {settings.jupyter_port} is taken here by "
                     f"{facts_['port_user']}: choose another JUPYTER_PORT in cluster.env")
    return found


def _missing_env(cluster_env, siblings):
    """What to do when the folder CLUSTER_ENV is missing: perhaps it is misspelled. The host
    names *siblings* (the environments beside it) by their full paths, ``~`` expanded: each is
    compared and named as CLUSTER_ENV spells its folder (``~/ipp-env``, not ``/home/lab/ipp-env``)."""
    folder = posixpath.dirname(cluster_env)
    siblings = [posixpath.join(folder, posixpath.basename(sibling)) for sibling in siblings]
    close = difflib.get_close_matches(cluster_env, siblings, n=1, cutoff=0.75)
    if close:
        return (f"CLUSTER_ENV {cluster_env} does not exist, but {close[0]} does: "
                "correct CLUSTER_ENV in cluster.env")
    return (f"CLUSTER_ENV {cluster_env} does not exist: correct CLUSTER_ENV in cluster.env if it"
            " is misspelled, else create it there with fab cluster.install")
