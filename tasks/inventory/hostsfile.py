"""
Read the inventory's ``hosts`` file: Ansible's INI format, the parts that matter here.

- ``[GROUP]`` sections of host lines: ``NAME [key=value ...]``, where NAME is
  ``[user@]host[:port]`` and may hold ranges (`tasks.inventory.ranges`);
- ``[GROUP:children]`` sections naming groups, ``[GROUP:vars]`` and ``[all:vars]``
  sections of ``key=value`` lines;
- the roles are the groups ``master`` (exactly one host) and ``engines``, with their
  children's hosts;
- variables (`tasks.inventory.variables`), on host lines and in ``:vars`` sections,
  each value read as Ansible reads it (a Python literal where it is one: ``4``,
  ``'a b'``), then checked.

`tasks.inventory.groups.resolve` makes roles and each host's variables of what is read.

Pure: every problem raises `tasks.inventory.folder.InventoryError` with file and line.
"""

import re
import shlex

from . import ranges, variables
from .groups import Group, Parsed

_GROUP = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_SECTION = re.compile(rf"^\[({_GROUP})(?::(vars|children))?\]$")


def _variable(text, parsed, error, line_vars, what="host setting"):
    """Read one ``key=value`` into *line_vars* (or note an ignored ansible_* name); the value
    as Ansible reads it (`tasks.inventory.variables.ansible_value`), then checked."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        hint = " (a host line is NAME [key=value ...])" if what == "host setting" else ""
        raise error(f"cannot parse {text!r}: expected key=value{hint}")
    group = what != "host setting"
    if key.startswith("ansible_") and not variables.is_known(key, group):
        parsed.ignored.add(key)
    elif key in variables.SLURM and not group:
        raise error(f"{key}= belongs to a group without hosts (a Slurm allocation), not to a host")
    elif not variables.is_known(key, group):
        raise error(f"unknown {what} {text!r} ({variables.HINT})")
    else:
        line_vars[key] = variables.check(key, variables.ansible_value(value), error, repr(value))


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
                parsed.groups.setdefault(section, Group())
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
            parsed.groups.setdefault(content, Group())
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
