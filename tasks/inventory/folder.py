"""
Read an inventory folder into plain, immutable objects.

An inventory folder holds two files:

- the hosts, in one of Ansible's formats: ``hosts`` (INI, `tasks.inventory.hostsfile`),
  ``hosts.yml``/``hosts.yaml`` (YAML) or ``hosts.json`` (``ansible-inventory --list``;
  both `tasks.inventory.yamlfile`), naming the groups ``master`` and ``engines``, with
  ranges, children and group variables, resolved alike (`tasks.inventory.groups`);
- ``cluster.env``: dotenv settings (`tasks.inventory.settings`).

Nothing here touches the network or a remote host. Every problem raises
`InventoryError`, which names the file, the line and what is wrong, so that a
bad inventory stops a task before any host is contacted.
"""

import fnmatch
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from . import allocations, groups, hostsfile, ranges, variables, yamlfile
from .allocations import Allocation
from .error import InventoryError
from .settings import Settings, parse_settings

__all__ = ["Allocation", "Host", "Inventory", "InventoryError", "Settings", "load_inventory", "parse_host",
           "parse_hosts", "parse_settings"]

#: The inventory used when ``CLUSTER_INVENTORY`` is not set.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "inventory"

_HOST = rf"{variables.HOSTNAME}|\[[0-9A-Fa-f:.]+\]"  # a name, an IPv4 address or [IPv6]
_HOST_RE = re.compile(
    rf"^(?:(?P<user>{variables.USER})@)?(?P<host>{_HOST})(?::(?P<port>[0-9]+))?$")


@dataclass(frozen=True)
class Host:
    """One host of the inventory, as written (``name``) and taken apart."""

    name: str
    hostname: str
    user: str = None
    port: int = None
    engines: int = None  # None: one engine per core of the host
    key: str = None      # ansible_ssh_private_key_file: the key for this host
    threads: int = None  # BLAS threads per engine; None: the host's cores / its engines
    gpus: str = None     # "auto" or indexes ("0,2"): one engine per GPU, each its own
    setup: str = ""      # shell snippet run before each program (``module load ...``)
    via: "Host" = None   # the host SSH goes through to reach this one (a job's node: the login node)

    @property
    def is_local(self):
        """True for a plain ``localhost``: it is run locally, without SSH."""
        return self.name == "localhost"


@dataclass(frozen=True)
class Inventory:
    """Who plays which role, and the settings every host shares."""

    master: Host
    engines: tuple
    settings: Settings
    folder: str
    warnings: tuple = ()  # lines to show once, such as ignored Ansible variables
    allocations: tuple = ()  # `Allocation`s: Slurm jobs whose nodes run engines too
    login: Host = None  # the inventory's master, once a job's node is the master (slurm_master)

    @property
    def slurm_host(self):
        """Where the Slurm commands run: the inventory's master (a login node)."""
        return self.login or self.master

    @property
    def master_allocation(self):
        """The allocation whose job's first node runs the controller and Jupyter, or None."""
        return next((a for a in self.allocations if a.master), None)

    @property
    def hosts(self):
        """Every distinct host, the master first."""
        seen = {self.master.name: self.master}
        for host in self.engines:
            seen.setdefault(host.name, host)
        return tuple(seen.values())


    def listing(self):
        """
        The inventory as resolved, as JSON-ready data: ``{"master": NAME, "hosts": [{"name",
        "roles", "address", "port", "user", "key", "engines", "threads", "gpus", "setup"}]}``,
        every host once, the master first; None where the inventory gives nothing.
        """
        engines = {host.name for host in self.engines}
        hosts = []
        for host in self.hosts:
            roles = (["master"] if host == self.master else []) + (
                ["engines"] if host.name in engines else [])
            if host.name in engines:
                host = next(h for h in self.engines if h.name == host.name)
            hosts.append({"name": host.name, "roles": roles, "address": host.hostname,
                          "port": host.port, "user": host.user, "key": host.key,
                          "engines": host.engines, "threads": host.threads, "gpus": host.gpus,
                          "setup": host.setup or None})
        return {"master": self.master.name, "hosts": hosts, "allocations": [
            {"name": a.name, "nodes": a.nodes, "partition": a.partition, "time": a.time,
             "account": a.account, "options": list(a.options), "engines": a.engines,
             "threads": a.threads, "gpus": a.gpus, "setup": a.setup or None, "master": a.master}
            for a in self.allocations]}

    def chosen_allocations(self, names=None):
        """The allocations *names* name (group names or shell-style patterns); all without."""
        names = [name for name in names or () if name]
        if not names:
            return self.allocations
        return tuple(a for a in self.allocations if any(_matches(a.name, n) for n in names))

    def allocation_names(self, names):
        """Those of *names* that name an allocation and no host."""
        return [name for name in names if any(_matches(a.name, name) for a in self.allocations)
                and not any(_matches(h.name, name) for h in self.hosts)]

    def select(self, role=None, names=None):
        """
        The hosts of *role* (``master``, ``engines`` or None for all), or of those of them
        that *names* name: inventory names, shell-style patterns (``node0*``) or Ansible's
        ranges (``node[1:3]``, each name of it), as the inventory's own hosts lines.

        :raises ValueError: for an unknown role, a bad range, or a name that matches none.
        """
        names = [each for name in names or () for each in
                 (ranges.expand(name) if _RANGE.search(name) else [name])]
        if role not in (None, "master", "engines"):
            raise ValueError(f"unknown role {role!r}: use master or engines")
        chosen = {None: self.hosts, "master": (self.master,), "engines": self.engines}[role]
        if not names:
            return chosen
        unknown = [name for name in names if not any(_matches(h.name, name) for h in self.hosts)]
        allocated = self.allocation_names(unknown)
        if allocated and role != "engines":
            raise ValueError(f"{', '.join(allocated)}: a Slurm allocation, not a host: only the "
                             "engines' and the status tasks act on it")
        if allocated:  # the engines' tasks take them from `chosen_allocations`
            names = [name for name in names if name not in allocated]
            unknown = [name for name in unknown if name not in allocated]
            if not names:
                return ()
        if unknown:
            raise ValueError(f"not in the inventory: {', '.join(unknown)}")
        elsewhere = [name for name in names if not any(_matches(h.name, name) for h in chosen)]
        if elsewhere:
            raise ValueError(f"not {'an engine host' if role == 'engines' else 'the master'}: "
                             + ", ".join(elsewhere))
        return tuple(host for host in chosen if any(_matches(host.name, name) for name in names))


#: A bracket with a colon is Ansible's range; without one, a shell pattern's class (``n[12]``).
_RANGE = re.compile(r"\[[^\]]*:[^\]]*\]")


def _matches(host_name, name):
    """True when *name* is *host_name*, or a shell-style pattern that matches it."""
    return host_name == name or fnmatch.fnmatchcase(host_name, name)


def parse_host(text, path, line):
    """Parse ``[user@]host[:port]`` (or an ssh config alias) into a `Host`."""
    match = _HOST_RE.match(text)
    if not match:
        raise InventoryError(
            path, line, f"bad host {text!r}: expected [user@]host[:port] "
            "with letters, digits, '.', '-' or '_'")
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise InventoryError(path, line, f"port {port} of {text!r} is out of range (1-65535)")
    return Host(name=text, hostname=match["host"].strip("[]"), user=match["user"],
                port=int(port) if port else None)


#: The files that may hold the hosts, and the reader of each.
HOSTS_FILES = {"hosts": "ini", "hosts.yml": "yaml", "hosts.yaml": "yaml", "hosts.json": "json"}


def parse_hosts(text, path="hosts", warnings=None, kind="ini"):
    """``(master, engines)`` of `parse_inventory`."""
    return parse_inventory(text, path, warnings, kind)[:2]


def parse_inventory(text, path="hosts", warnings=None, kind="ini"):
    """
    Parse the hosts file into ``(master, engines, allocations)``: *kind* ``ini`` (Ansible's INI, see
    `tasks.inventory.hostsfile`), ``yaml`` or ``json`` (see `tasks.inventory.yamlfile`).

    *warnings*, a list, receives the warning line about ignored Ansible variables.
    Raises `InventoryError` with the line of the problem.
    """
    def error_at(line):
        return lambda reason: InventoryError(path, line, reason)
    if kind == "ini":
        parsed = hostsfile.read(text, path, parse_host, error_at)
    else:
        parsed = yamlfile.read(text, path, parse_host, error_at, json=kind == "json")
    master, engines, found = groups.resolve(parsed, error_at)
    for name, own in parsed.host_vars.items() if kind != "json" else ():  # JSON's are resolved
        for key in ("engines", "gpus"):
            if key in own and name not in engines:
                raise error_at(parsed.hosts[name][1])(
                    f"{key}= belongs under {parsed.group('engines')}, not {parsed.group('master')}")
    warning = groups.warning(parsed)
    if warnings is not None and warning:
        warnings.append(warning)
    hosts = {name: _with_variables(parsed.hosts[name][0], found[name], parsed.host_vars[name])
             for name in (master, *engines)}
    return hosts[master], tuple(hosts[name] for name in engines), allocations.read(parsed, error_at)


def _with_variables(host, merged, own):
    """*host* (from its NAME) with its variables: its own first, then its NAME's user and
    port, then its groups' (*merged* holds all of them, its own last)."""
    user = own.get("ansible_user") or host.user or merged.get("ansible_user")
    port = own.get("ansible_port") or host.port or merged.get("ansible_port")
    return replace(host, hostname=merged.get("ansible_host", host.hostname), user=user,
                   port=port, engines=merged.get("engines"),
                   key=merged.get("ansible_ssh_private_key_file"), threads=merged.get("threads"),
                   gpus=merged.get("gpus"), setup=merged.get("setup", ""))


def with_settings(host, settings):
    """*host* with cluster.env's ``SETUP`` and ``ENGINE_THREADS`` where the hosts file sets none."""
    return replace(host, setup=host.setup or settings.setup,
                   threads=host.threads or settings.engine_threads or None)


def load_inventory(folder=None):
    """
    Read the inventory folder (default: ``$CLUSTER_INVENTORY`` or `DEFAULT_DIR`).

    :returns: an `Inventory`.
    :raises InventoryError: naming the file, the line and the problem.
    """
    folder = Path(folder or os.environ.get("CLUSTER_INVENTORY") or DEFAULT_DIR)
    if not folder.is_dir():
        raise InventoryError(folder, 0, "inventory folder does not exist (set CLUSTER_INVENTORY)")
    found = [name for name in HOSTS_FILES if (folder / name).is_file()]
    if not found:
        raise InventoryError(folder / "hosts", 0, "missing: the inventory needs a hosts file"
                             " (hosts, hosts.yml, hosts.yaml or hosts.json)")
    if len(found) > 1:
        raise InventoryError(folder, 0, f"{' and '.join(found)} are all hosts files: keep one")
    hosts_file = folder / found[0]
    env_file = folder / "cluster.env"
    warnings = []
    master, engines, allocated = parse_inventory(hosts_file.read_text(), hosts_file, warnings,
                                                 HOSTS_FILES[found[0]])
    settings = parse_settings(env_file.read_text() if env_file.is_file() else "", env_file)
    master = with_settings(master, settings)
    engines = tuple(with_settings(host, settings) for host in engines)
    allocated = tuple(replace(a, setup=a.setup or settings.setup, renew=a.renew if settings.shared_home
                              else 0,  # a renewed job's nodes read the connection file there
                              threads=a.threads or settings.engine_threads or None) for a in allocated)
    unshared = [a for a in allocated if a.master or a.jobs != (1, 1)]
    if unshared and not settings.shared_home:
        line = max((number for number, text in enumerate(env_file.read_text().splitlines(), 1)
                    if re.match(r"\s*(export\s+)?SHARED_HOME\s*=", text)), default=0)  # the last counts
        raise InventoryError(env_file, line, (
            "SHARED_HOME=no, but slurm_master=yes in the hosts file puts the controller in a job"
            if unshared[0].master else f"SHARED_HOME=no, but {unshared[0].name} has slurm_jobs=: the "
            "keeper submits its jobs") + ": their nodes read the controller's connection file from "
            "the shared home")
    return Inventory(master=master, engines=engines, settings=settings, folder=str(folder),
                     warnings=tuple(warnings), allocations=allocated)
