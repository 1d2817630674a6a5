"""
Read the inventory's ``hosts`` file: Ansible's INI format, the parts that matter here.

- ``[GROUP]`` sections of host lines: ``NAME [key=value ...]``, where NAME is
  ``[user@]host[:port]`` and may hold ranges (`tasks.inventory.ranges`);
- ``[GROUP:children]`` sections naming groups, ``[GROUP:vars]`` and ``[all:vars]``
  sections of ``key=value`` lines;
- the roles are the groups ``master`` (exactly one host) and ``engines``, with their
  children's hosts;
- variables: ``engines`` (how many engines), ``threads`` (BLAS threads per engine),
  ``gpus`` (``auto`` or device indexes: one engine per GPU), ``setup`` (a shell snippet
  run before each program, such as ``module load python/3.11``), and ``ansible_host``, ``ansible_port``,
  ``ansible_user`` and ``ansible_ssh_private_key_file`` with Ansible's meaning (the
  NAME stays the host's name in every table); other ``ansible_*`` variables are
  ignored with one warning; anything else is an error. A host's value comes from
  the host line, else from its deepest group (children before parents, then by
  name), else from ``[all:vars]``, as in Ansible.

Pure: every problem raises `tasks.inventory.folder.InventoryError` with file and line.
"""

import re
import shlex
from dataclasses import dataclass, field

from . import ranges

_GROUP = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_SECTION = re.compile(rf"^\[({_GROUP})(?::(vars|children))?\]$")
#: A user name, and a host name or IPv4 address, as the inventory's host strings hold them.
USER = r"[A-Za-z_][A-Za-z0-9_.-]*"
HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_USER = re.compile(rf"^{USER}$")
_HOSTNAME = re.compile(rf"^(?:{HOSTNAME}|[0-9A-Fa-f:.]+)$")  # or an IPv6 address, unbracketed
_KEY_FILE = re.compile(r"^[~/A-Za-z0-9._+@-][A-Za-z0-9._/+@-]*$")

#: The Ansible variables that mean something here, and the other variable.
USED = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file")
#: This project's own variables.
OWN = ("engines", "threads", "gpus", "setup")
KNOWN = (*OWN, *USED)
_GPUS = re.compile(r"^(?:auto|[0-9]+(?:,[0-9]+)*)$")


@dataclass
class _Group:
    """A group of the file: its own hosts, and the groups it names as children."""

    hosts: dict = field(default_factory=dict)       # host names (keys), in file order
    children: list = field(default_factory=list)    # (group name, line)


@dataclass
class Parsed:
    """What the file says: each host's text, its own variables, and the groups."""

    path: str
    hosts: dict = field(default_factory=dict)       # name -> (Host from its NAME, first line)
    host_vars: dict = field(default_factory=dict)   # name -> {key: value}
    groups: dict = field(default_factory=dict)      # group name -> _Group
    group_vars: dict = field(default_factory=dict)  # group name -> {key: value} ("all" too)
    vars_lines: dict = field(default_factory=dict)  # group name -> line of [GROUP:vars]
    ignored: set = field(default_factory=set)       # ansible_* names that are ignored


def _check(key, value, error):
    """Validate one variable's *value*; returns it converted (engines, port: int)."""
    if key in ("engines", "threads"):
        if not value.isdigit() or int(value) < 1:
            raise error(f"{key}={value!r} must be a whole number of at least 1")
        return int(value)
    if key == "gpus":
        if not _GPUS.match(value) or len(set(value.split(","))) != len(value.split(",")):
            raise error(f"gpus={value!r} must be auto or GPU indexes such as 0,2 (each once)")
        return value
    if key == "setup":
        if not value:
            raise error("setup= is empty: give it a shell snippet, such as"
                        " setup='module load python/3.11'")
        return value
    if key == "ansible_port":
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise error(f"ansible_port={value!r} must be a port number from 1 to 65535")
        return int(value)
    patterns = {"ansible_host": _HOSTNAME, "ansible_user": _USER,
                "ansible_ssh_private_key_file": _KEY_FILE}
    if not patterns[key].match(value):
        raise error(f"{key}={value!r} is not a valid {key[len('ansible_'):].replace('_', ' ')}")
    return value


def _variable(text, parsed, error, line_vars, what="host setting"):
    """Read one ``key=value`` into *line_vars* (or note an ignored ansible_* name)."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        hint = " (a host line is NAME [key=value ...])" if what == "host setting" else ""
        raise error(f"cannot parse {text!r}: expected key=value{hint}")
    if key.startswith("ansible_") and key not in USED:
        parsed.ignored.add(key)
    elif key not in KNOWN:
        raise error(f"unknown {what} {text!r} (known: engines=N, threads=N, gpus=auto|0,1,"
                    " setup=SNIPPET, " + ", ".join(USED) + ")")
    else:
        line_vars[key] = _check(key, _unquoted(value) if what != "host setting" else value, error)


def _unquoted(value):
    """A ``:vars`` value without the quotes around it, as Ansible reads ``'a b'`` or ``"a b"``."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read(text, path, parse_host, error_at):
    """
    Read the ``hosts`` file *text* into a `Parsed`.

    *parse_host(text, path, line)* makes a `tasks.inventory.folder.Host` of one NAME;
    *error_at(line)* makes a function from a reason to the error to raise.
    """
    parsed = Parsed(str(path))
    section = kind = None
    for number, raw in enumerate(text.splitlines(), start=1):
        error = error_at(number)
        content = raw.strip()
        if not content or content.startswith(("#", ";")):
            continue
        if content.startswith("["):
            match = _SECTION.match(content)
            if not match:
                raise error(f"bad section {content!r}: expected [GROUP], [GROUP:vars] or "
                            "[GROUP:children]")
            section, kind = match[1], match[2]
            if kind == "vars":
                parsed.vars_lines.setdefault(section, number)
            else:
                parsed.groups.setdefault(section, _Group())
            continue
        if section is None:
            raise error(f"{content!r} is outside a section: put it under [master] or [engines]")
        if kind == "vars":
            group_vars = parsed.group_vars.setdefault(section, {})
            _variable(content, parsed, error, group_vars, "group variable")
        elif kind == "children":
            if not re.match(rf"^{_GROUP}$", content):
                raise error(f"bad group name {content!r} in [{section}:children]")
            parsed.groups[section].children.append((content, number))
            parsed.groups.setdefault(content, _Group())
        else:
            _host_line(content, section, number, parsed, parse_host, error)
    return parsed


def _host_line(content, section, number, parsed, parse_host, error):
    try:
        first, *pairs = shlex.split(content, comments=True)
    except ValueError as problem:
        raise error(f"cannot parse {content!r}: {problem}") from None
    try:
        names = ranges.expand(first)
    except ranges.RangeError as problem:
        raise error(str(problem)) from None
    hosts = [parse_host(name, parsed.path, number) for name in names]
    line_vars = {}
    for pair in pairs:
        _variable(pair, parsed, error, line_vars)
    group = parsed.groups[section]
    for name, host in zip(names, hosts):
        if name in group.hosts:
            raise error(f"duplicate host {name!r} in [{section}]")
        group.hosts[name] = None
        parsed.hosts.setdefault(name, (host, number))
        parsed.host_vars.setdefault(name, {}).update(line_vars)


def _members(parsed, name):
    """The host names of group *name* and of its children, each once, in file order."""
    group = parsed.groups.get(name)
    if group is None:
        return []
    found = list(group.hosts)
    for child, _ in group.children:
        found += _members(parsed, child)
    return list(dict.fromkeys(found))


def _check_groups(parsed, error_at):
    """A ``[GROUP:vars]`` of an unknown group, or a group that is its own child: an error."""
    for name, line in parsed.vars_lines.items():
        if name != "all" and name not in parsed.groups:
            raise error_at(line)(f"[{name}:vars] is for an unknown group {name!r}: "
                                 f"no [{name}] or [{name}:children] section names it")

    def visit(name, path):
        for child, line in parsed.groups[name].children:
            if child in path:
                cycle = " -> ".join([*path[path.index(child):], child])
                raise error_at(line)(f"group {child!r} is its own child: {cycle}")
            visit(child, (*path, child))
    for name in parsed.groups:
        visit(name, (name,))


def _depths(parsed):
    """Each group's depth: 1 for a group that is nobody's child, else one more than its
    deepest parent's (Ansible applies group variables from the shallowest)."""
    parents = {name: [p for p, g in parsed.groups.items() if name in dict(g.children)]
               for name in parsed.groups}
    depths = {}

    def depth(name):
        if name not in depths:
            depths[name] = 1 + max((depth(p) for p in parents[name]), default=0)
        return depths[name]
    return {name: depth(name) for name in parsed.groups}


def resolve(parsed, error_at):
    """
    ``(master name, [engine host names], {host name: variables})`` after checking the groups.

    The master is the one host of ``master`` (with its children); the engine hosts are
    those of ``engines``, in the order the file first names them. A host's variables
    are ``[all:vars]``, then its groups' from the shallowest (then by name), then its own.
    """
    _check_groups(parsed, error_at)
    masters = _members(parsed, "master")
    if not masters:
        raise error_at(0)("no [master] section with a host")
    if len(masters) > 1:
        raise error_at(parsed.hosts[masters[1]][1])("[master] must hold exactly one host")
    order = {name: position for position, name in enumerate(parsed.hosts)}
    engines = sorted(_members(parsed, "engines"), key=order.__getitem__)
    depths = _depths(parsed)
    groups_of = {name: [] for name in parsed.hosts}
    for group in sorted(parsed.groups, key=lambda g: (depths[g], g)):
        for name in _members(parsed, group):
            groups_of[name].append(group)
    variables = {}
    for name in parsed.hosts:
        merged = dict(parsed.group_vars.get("all", {}))
        for group in groups_of[name]:
            merged.update(parsed.group_vars.get(group, {}))
        variables[name] = merged | parsed.host_vars[name]
    return masters[0], engines, variables


def warning(parsed):
    """The one warning line about ignored Ansible variables, or None."""
    if not parsed.ignored:
        return None
    return f"{parsed.path}: ignored (they mean nothing here): " + ", ".join(sorted(parsed.ignored))
