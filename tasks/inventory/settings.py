"""
Read ``cluster.env``, the settings every host shares, with python-dotenv's parser:
each key known, each value checked (a table: the key, the `Settings` field it sets,
how its value is checked), or an `InventoryError` naming the file and the line.
"""

import io
import ipaddress
import re
from dataclasses import dataclass

from dotenv.parser import parse_stream

from .error import InventoryError

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@-]*$")
_HOME_PATH_RE = re.compile(r"^~/[A-Za-z0-9._/+@-]*[A-Za-z0-9._+@-]/*$")


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
    engine_threads: int = 0  # BLAS threads per engine; 0: the host's cores / its engines
    setup: str = ""  # shell snippet run by /bin/sh before each program on every host
    slurm_wait: float = 600.0  # seconds cluster.up waits for an allocation's job to start
    controller_ports: tuple = ()  # (LOW, HIGH): every port of the cluster in it; (): any ports
    controller_interface: str = ""  # the master's interface (ib0) or network (10.0.0.0/8) of it

    @property
    def bin_prefix(self):
        """What goes before a program's name: ``CLUSTER_ENV/bin/`` or nothing."""
        return f"{self.cluster_env.rstrip('/')}/bin/" if self.cluster_env else ""

    @property
    def controller_pool(self):
        """The controller's ports, as ipcontroller's ``--ports`` reads them (``20001-20019``):
        ``CONTROLLER_PORTS`` less Jupyter's port; "" when it is unset."""
        if not self.controller_ports:
            return ""
        low, high = self.controller_ports
        parts = [(low, self.jupyter_port - 1), (self.jupyter_port + 1, high)]
        return ",".join(f"{a}-{b}" if a < b else str(a) for a, b in parts if a <= b)


def _absolute_path(value):
    if value and not _PATH_RE.match(value):
        raise ValueError("must be an absolute path of letters, digits and ._/+@- (or empty)")
    return value.rstrip("/") or ("/" if value else "")


def _env_path(value):
    """An absolute path, or one under ``~/``: each host expands ``~`` with its own home
    (``setup`` in ``tasks/remote/steps/lib.sh``), for a user who can write only there."""
    if value and not (_PATH_RE.match(value) or _HOME_PATH_RE.match(value)):
        raise ValueError("must be an absolute path or one under ~/, of letters, digits and ._/+@-"
                         " (or empty)")
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


def _port_range(value):
    """``LOW-HIGH``, two ports a user's program may listen on, as ``(LOW, HIGH)``; or ()."""
    if not value:
        return ()
    match = re.match(r"^([0-9]{4,5})-([0-9]{4,5})$", value)
    if not match or not 1024 <= int(match[1]) <= int(match[2]) <= 65535:
        raise ValueError("must be LOW-HIGH, two ports from 1024 to 65535 with LOW no greater"
                         " than HIGH (or empty)")
    return int(match[1]), int(match[2])


_INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")  # Linux: at most 15 characters


def _interface(value):
    """A network interface's name, or an IPv4 network (``10.1.2.3/8`` read as ``10.0.0.0/8``)."""
    wrong = "must be a network interface's name (ib0) or an IPv4 network (10.0.0.0/8), or empty"
    if not value:
        return ""
    if "/" in value:
        try:
            return str(ipaddress.IPv4Network(value, strict=False))
        except ValueError:
            raise ValueError(wrong) from None
    try:
        ipaddress.IPv4Address(value)
        raise ValueError(wrong + " (one address: that is CONTROLLER_ADDRESS)")
    except ipaddress.AddressValueError:
        pass
    if not _INTERFACE_RE.match(value):
        raise ValueError(wrong)
    return value


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
    "CLUSTER_ENV": ("cluster_env", _env_path),
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
    "ENGINE_THREADS": ("engine_threads", lambda value: _number(int, 1, 4096)(value) if value else 0),
    "SETUP": ("setup", str),
    "SLURM_WAIT": ("slurm_wait", _number(float, 0, 7 * 86400)),
    "CONTROLLER_PORTS": ("controller_ports", _port_range),
    "CONTROLLER_INTERFACE": ("controller_interface", _interface),
}


def parse_settings(text, path="cluster.env"):
    """Parse ``cluster.env`` into `Settings`; raises `InventoryError` on a bad line."""
    values, lines = {}, {}
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
        lines[binding.key] = line
    _jupyter_in_range(values, lines.get("JUPYTER_PORT"), path)
    if values.get("controller_interface") and values.get("controller_address"):
        raise InventoryError(path, max(lines["CONTROLLER_INTERFACE"], lines["CONTROLLER_ADDRESS"]),
                             f"CONTROLLER_INTERFACE={values['controller_interface']} and"
                             f" CONTROLLER_ADDRESS={values['controller_address']}: set one of"
                             " them, not both")
    return Settings(**values)


def _jupyter_in_range(values, line, path):
    """With ``CONTROLLER_PORTS``, Jupyter's port lies in it: its first port unless JUPYTER_PORT
    (at *line*) names one of it; one outside is an `InventoryError` at that line."""
    if not values.get("controller_ports"):
        return
    low, high = values["controller_ports"]
    if "jupyter_port" not in values:
        values["jupyter_port"] = low
    elif not low <= values["jupyter_port"] <= high:
        raise InventoryError(path, line, f"JUPYTER_PORT={values['jupyter_port']} is outside"
                             f" CONTROLLER_PORTS={low}-{high}: every port of the cluster lies in"
                             f" that range; choose a JUPYTER_PORT in it, or leave it out (Jupyter"
                             f" then takes {low})")
