"""
Read an inventory folder into plain, immutable objects.

An inventory folder holds two files:

- ``hosts``: Ansible's INI naming the ``[master]`` and the ``[engines]``, with ranges,
  children and group variables (read by `tasks.hostsfile`);
- ``cluster.env``: dotenv settings, read here with python-dotenv's parser.

Nothing here touches the network or a remote host. Every problem raises
`InventoryError`, which names the file, the line and what is wrong, so that a
bad inventory stops a task before any host is contacted.
"""

import fnmatch
import io
import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from dotenv.parser import parse_stream

from . import hostsfile, ranges

#: The inventory used when ``CLUSTER_INVENTORY`` is not set.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "inventory"

_USER = r"[A-Za-z_][A-Za-z0-9_.-]*"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
_HOST_RE = re.compile(rf"^(?:(?P<user>{_USER})@)?(?P<host>{_HOST})(?::(?P<port>[0-9]+))?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@-]*$")


class InventoryError(ValueError):
    """A problem in an inventory file: carries ``path``, ``line`` and ``reason``."""

    def __init__(self, path, line, reason):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Host:
    """One host of the inventory, as written (``name``) and taken apart."""

    name: str
    hostname: str
    user: str = None
    port: int = None
    engines: int = None  # None: one engine per core of the host
    key: str = None      # ansible_ssh_private_key_file: the key for this host

    @property
    def is_local(self):
        """True for a plain ``localhost``: it is run locally, without SSH."""
        return self.name == "localhost"


@dataclass(frozen=True)
class Settings:
    """The values of ``cluster.env``, with their defaults."""

    cluster_env: str = ""
    cluster_name: str = "ipp"
    ipp_profile: str = "default"
    jupyter_port: int = 8888
    engine_timeout: float = 60.0
    connect_timeout: float = 10.0
    parallel: int = 32
    encrypt: bool = False
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_checking: str = "accept-new"
    shared_home: bool = True
    notebook_dir: str = ""
    controller_address: str = ""
    engine_restart: bool = True
    memory_limit: str = ""  # bytes, "auto" (the host's memory / its engines) or "": none

    @property
    def bin_prefix(self):
        """What goes before a program's name: ``CLUSTER_ENV/bin/`` or nothing."""
        return f"{self.cluster_env.rstrip('/')}/bin/" if self.cluster_env else ""


@dataclass(frozen=True)
class Inventory:
    """Who plays which role, and the settings every host shares."""

    master: Host
    engines: tuple
    settings: Settings
    folder: str
    warnings: tuple = ()  # lines to show once, such as ignored Ansible variables

    @property
    def hosts(self):
        """Every distinct host, the master first."""
        seen = {self.master.name: self.master}
        for host in self.engines:
            seen.setdefault(host.name, host)
        return tuple(seen.values())


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


def parse_hosts(text, path="hosts", warnings=None):
    """
    Parse the ``hosts`` file (Ansible's INI, see `tasks.hostsfile`) into ``(master, engines)``.

    *warnings*, a list, receives the warning line about ignored Ansible variables.
    Raises `InventoryError` with the line of the problem.
    """
    def error_at(line):
        return lambda reason: InventoryError(path, line, reason)
    parsed = hostsfile.read(text, path, parse_host, error_at)
    master, engines, variables = hostsfile.resolve(parsed, error_at)
    for name, own in parsed.host_vars.items():
        if "engines" in own and name not in engines:
            raise error_at(parsed.hosts[name][1])("engines= belongs under [engines], not [master]")
    if warnings is not None and hostsfile.warning(parsed):
        warnings.append(hostsfile.warning(parsed))
    hosts = {name: _with_variables(parsed.hosts[name][0], variables[name], parsed.host_vars[name])
             for name in (master, *engines)}
    return hosts[master], tuple(hosts[name] for name in engines)


def _with_variables(host, merged, own):
    """*host* (from its NAME) with its variables: its own first, then its NAME's user and
    port, then its groups' (*merged* holds all of them, its own last)."""
    user = own.get("ansible_user") or host.user or merged.get("ansible_user")
    port = own.get("ansible_port") or host.port or merged.get("ansible_port")
    return replace(host, hostname=merged.get("ansible_host", host.hostname), user=user,
                   port=port, engines=merged.get("engines"),
                   key=merged.get("ansible_ssh_private_key_file"))


def _absolute_path(value):
    if value and not _PATH_RE.match(value):
        raise ValueError("must be an absolute path of letters, digits and ._/+@- (or empty)")
    return value.rstrip("/") or ("/" if value else "")


def _name(value):
    if not _NAME_RE.match(value):
        raise ValueError("must be letters, digits, '_' or '-'")
    return value


def _yes_no(value):
    if value.lower() not in ("yes", "no"):
        raise ValueError("must be yes or no")
    return value.lower() == "yes"


def _one_of(*choices):
    def convert(value):
        if value not in choices:
            raise ValueError("must be " + " or ".join(choices))
        return value
    return convert


def _ipv4(value):
    try:
        return str(ipaddress.IPv4Address(value)) if value else ""
    except ValueError:
        raise ValueError("must be an IPv4 address of the master (or empty)") from None


def _memory(value):
    match = re.match(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)i?B?$", value, re.IGNORECASE)
    if value in ("", "auto"):
        return value
    if not match or float(match[1]) <= 0:
        raise ValueError("must be a size such as 4G or 512M, auto, or empty")
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return str(int(float(match[1]) * units[match[2].upper()]))


def _local_path(value):
    if not value.startswith(("/", "~")):
        raise ValueError("must be an absolute path (or start with ~)")
    return value


def _number(kind, low, high):
    def convert(value):
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"must be a number from {low} to {high}") from None
        if not low <= number <= high:
            raise ValueError(f"must be a number from {low} to {high}")
        return number
    return convert


#: cluster.env keys, the `Settings` field each sets, and how its value is checked.
SETTINGS = {
    "CLUSTER_ENV": ("cluster_env", _absolute_path),
    "CLUSTER_NAME": ("cluster_name", _name),
    "IPP_PROFILE": ("ipp_profile", _name),
    "JUPYTER_PORT": ("jupyter_port", _number(int, 1, 65535)),
    "ENGINE_TIMEOUT": ("engine_timeout", _number(float, 1, 86400)),
    "CONNECT_TIMEOUT": ("connect_timeout", _number(float, 1, 600)),
    "PARALLEL": ("parallel", _number(int, 1, 1024)),
    "ENCRYPT": ("encrypt", _yes_no),
    "KNOWN_HOSTS": ("known_hosts", _local_path),
    "HOST_KEY_CHECKING": ("host_key_checking", _one_of("accept-new", "strict")),
    "SHARED_HOME": ("shared_home", _yes_no),
    "NOTEBOOK_DIR": ("notebook_dir", _absolute_path),
    "CONTROLLER_ADDRESS": ("controller_address", _ipv4),
    "ENGINE_RESTART": ("engine_restart", _yes_no),
    "MEMORY_LIMIT": ("memory_limit", _memory),
}


def parse_settings(text, path="cluster.env"):
    """Parse ``cluster.env`` into `Settings`; raises `InventoryError` on a bad line."""
    values = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        blank_lines = original[: len(original) - len(original.lstrip())].count("\n")
        line = binding.original.line + blank_lines
        if binding.error or (binding.key is not None and binding.value is None):
            raise InventoryError(path, line, f"cannot parse {original.strip()!r}: expected KEY=VALUE")
        if binding.key is None:
            continue
        if binding.key not in SETTINGS:
            raise InventoryError(path, line, f"unknown setting {binding.key!r}; known: "
                                 + ", ".join(SETTINGS))
        field, convert = SETTINGS[binding.key]
        try:
            values[field] = convert(binding.value.strip())
        except ValueError as error:
            raise InventoryError(path, line, f"{binding.key}={binding.value!r} {error}") from None
    return Settings(**values)


def load_inventory(folder=None):
    """
    Read the inventory folder (default: ``$CLUSTER_INVENTORY`` or `DEFAULT_DIR`).

    :returns: an `Inventory`.
    :raises InventoryError: naming the file, the line and the problem.
    """
    folder = Path(folder or os.environ.get("CLUSTER_INVENTORY") or DEFAULT_DIR)
    if not folder.is_dir():
        raise InventoryError(folder, 0, "inventory folder does not exist (set CLUSTER_INVENTORY)")
    texts = {}
    for name in ("hosts", "cluster.env"):
        try:
            texts[name] = (folder / name).read_text()
        except FileNotFoundError:
            if name == "hosts":
                raise InventoryError(folder / name, 0, "missing: the inventory needs a hosts file") from None
            texts[name] = ""
    warnings = []
    master, engines = parse_hosts(texts["hosts"], folder / "hosts", warnings)
    settings = parse_settings(texts["cluster.env"], folder / "cluster.env")
    return Inventory(master=master, engines=engines, settings=settings, folder=str(folder),
                     warnings=tuple(warnings))
