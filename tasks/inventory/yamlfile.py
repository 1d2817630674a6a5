"""
Read the inventory's ``hosts.yml`` (Ansible's YAML format) or ``hosts.json`` (the output of
``ansible-inventory -i SOURCE --list``) into a `tasks.inventory.groups.Parsed`, which the
INI reader fills too, so that the three formats resolve alike.

- YAML: groups (``all`` at the top, usually) each with ``hosts`` (a mapping of host
  names, with ranges, to their variables), ``vars`` and ``children`` (a mapping of
  groups, defined there or elsewhere);
- JSON: ``_meta.hostvars`` (each host's variables) and groups with ``hosts`` and
  ``children`` (lists of names) and perhaps ``vars`` (with ``--export``). A dynamic
  inventory sets variables of its own (``ec2_*``...): unknown ones are ignored here, with
  the one warning line, where YAML's, written by hand, are errors.

Both are read with PyYAML's safe loader (JSON is YAML too), which keeps each node's line,
so that every error names the file and the line. Pure.
"""

import yaml

from . import ranges, variables
from .groups import Group, Parsed

_GROUP_KEYS = ("hosts", "vars", "children")


def read(text, path, parse_host, error_at, json=False):
    """
    Read the YAML (or, with *json*, ``ansible-inventory --list``) *text* into a `Parsed`.

    *parse_host(text, path, line)* makes a `tasks.inventory.folder.Host` of one name;
    *error_at(line)* makes a function from a reason to the error to raise.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        raise error_at(mark.line + 1 if mark else 0)(
            f"not valid {'JSON' if json else 'YAML'}: {getattr(problem, 'problem', problem)}") from None
    reader = _Reader(Parsed(str(path), ini=False), loader, parse_host, error_at, strict=not json)
    if root is None:
        return reader.parsed
    items = reader.mapping(root, "the file")
    if json:
        reader.listing(items)
    else:
        for name_node, group_node in items:
            reader.group(reader.name(name_node), group_node)
    return reader.parsed


def _line(node):
    return node.start_mark.line + 1


class _Reader:
    """Fills one `Parsed` from the nodes of one file."""

    def __init__(self, parsed, loader, parse_host, error_at, strict):
        self.parsed, self.loader, self.parse_host, self.error_at = parsed, loader, parse_host, error_at
        self.strict = strict
        self.walking = []  # (node, name) of the groups being read, outermost first

    def value(self, node):
        """The Python value of *node*; a tag the safe loader does not know (``!vault``) is an error."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as problem:
            raise self.error_at(_line(node))(
                f"cannot read {node.tag}: {getattr(problem, 'problem', problem)}") from None

    def mapping(self, node, what):
        """The ``(key node, value node)`` pairs of a mapping *node*, or an error naming *what*."""
        if isinstance(node, yaml.ScalarNode) and self.value(node) is None:
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.error_at(_line(node))(f"{what} must be a mapping, not {_kind(node)}")
        return node.value

    def names(self, node, what):
        """The name nodes of a list *node* (JSON's ``hosts`` and ``children``)."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.error_at(_line(node))(f"{what} must be a list, not {_kind(node)}")
        return node.value

    def name(self, node):
        value = self.value(node)
        if not isinstance(value, str) or not value:
            raise self.error_at(_line(node))(f"{value!r} is not a group or host name")
        return value

    def group(self, name, node, line=0):
        """
        Read the YAML group *name* (its node may be empty) and, through it, its children.
        A YAML alias can make a group's node its own descendant (``engines: &e {children:
        {racks: *e}}``): that node, met again while it is read, is an error at *line* (where
        *name* is a child), not an endless walk.
        """
        for depth, (held, outer) in enumerate(self.walking):
            if held is node:  # by identity: the same node twice in a tree is an alias
                chain = " -> ".join([n for _, n in self.walking[depth:]] + [name])
                alias = f", an alias of {outer}" if outer != name else ""
                raise self.error_at(line)(f"group {name!r} is its own child: {chain}{alias}")
        self.walking.append((node, name))
        if name != "all":
            self.parsed.groups.setdefault(name, Group())
        for key_node, value_node in self.mapping(node, f"group {name!r}"):
            key = self.value(key_node)
            if key not in _GROUP_KEYS:
                raise self.error_at(_line(key_node))(
                    f"unknown key {key!r} in group {name!r} (known: hosts, vars, children)")
            if key == "vars":
                self.parsed.vars_lines.setdefault(name, _line(key_node))
                self.variables(value_node, self.parsed.group_vars.setdefault(name, {}),
                               f"the vars of group {name!r}", group=True)
            elif key == "hosts":
                for host_node, vars_node in self.mapping(value_node, f"the hosts of group {name!r}"):
                    self.hosts(name, host_node, vars_node)
            else:
                for child_node, child in self.mapping(value_node, f"the children of group {name!r}"):
                    child_name, at = self.name(child_node), _line(child_node)
                    self.child(name, child_name, at)
                    self.group(child_name, child, at)
        self.walking.pop()

    def child(self, parent, name, line):
        if name == "all":
            raise self.error_at(line)(f"group 'all' cannot be a child of {parent!r}")
        self.parsed.groups.setdefault(name, Group())
        if parent != "all":
            self.parsed.groups[parent].children.append((name, line))

    def hosts(self, group, name_node, vars_node, expand=True):
        """Add the host (or, with *expand*, the range) of *name_node* to *group*, with its
        variables (*vars_node*, a mapping, or None)."""
        line, pattern = _line(name_node), self.name(name_node)
        try:
            names = ranges.expand(pattern) if expand else [pattern]
        except ranges.RangeError as problem:
            raise self.error_at(line)(str(problem)) from None
        own = {}
        if vars_node is not None:
            self.variables(vars_node, own, f"the variables of host {pattern!r}")
        for name in names:
            self.parsed.hosts.setdefault(name, (self.parse_host(name, self.parsed.path, line), line))
            self.parsed.host_vars.setdefault(name, {}).update(own)
            if group != "all":
                self.parsed.groups[group].hosts[name] = None

    def variables(self, node, into, what, group=False):
        """Read a mapping of variables into *into*, each checked (`tasks.inventory.variables`)."""
        for key_node, value_node in self.mapping(node, what):
            key, line = self.value(key_node), _line(key_node)
            if not isinstance(key, str):
                raise self.error_at(line)(f"{key!r} in {what} is not a variable name")
            if key in variables.SLURM and not group and self.strict:
                raise self.error_at(line)(f"{key} belongs to a group without hosts (a Slurm "
                                          f"allocation), not to {what}")
            if not variables.is_known(key, group):
                if key.startswith("ansible_") or not self.strict:
                    self.parsed.ignored.add(key)
                    continue
                raise self.error_at(line)(f"unknown variable {key!r} in {what} ({variables.HINT})")
            value = self.value(value_node)
            if key == "slurm_time" and isinstance(value_node, yaml.ScalarNode):
                value = value_node.value  # as written: YAML 1.1 reads 4:00:00 as 14400 (base 60)
            into[key] = variables.check(key, value, self.error_at(_line(value_node)))

    def check_entries(self, entries):
        """A listing whose group names a child with no entry of its own has lost that group's
        variables: ``ansible-inventory --list`` leaves out a group without hosts (a Slurm
        allocation), where ``--list --export`` keeps it with its ``vars``."""
        under = {"engines"}
        while True:  # the groups below engines, where allocations are
            more = {child for name in under for child, _ in self.parsed.groups.get(name, Group()).children}
            if more <= under:
                break
            under |= more
        for parent, group in self.parsed.groups.items():
            for child, line in group.children:
                if child not in entries and parent in under:
                    raise self.error_at(line)(
                        f"group {child!r}, a child of {parent!r}, has no entry of its own: "
                        "ansible-inventory --list leaves out a group without hosts and its "
                        "variables; make this file with ansible-inventory -i SOURCE --list --export")

    def listing(self, items):
        """Read ``ansible-inventory --list``: groups first, then ``_meta.hostvars``."""
        host_vars, entries = {}, {"all"}
        for name_node, group_node in items:
            name = self.name(name_node)
            entries.add(name)
            if name == "_meta":
                for key_node, value_node in self.mapping(group_node, "_meta"):
                    if self.value(key_node) == "hostvars":
                        host_vars = dict(self.mapping(value_node, "_meta.hostvars"))
                continue
            if name != "all":
                self.parsed.groups.setdefault(name, Group())
            for key_node, value_node in self.mapping(group_node, f"group {name!r}"):
                key = self.value(key_node)
                if key == "hosts":
                    for host_node in self.names(value_node, f"the hosts of group {name!r}"):
                        self.hosts(name, host_node, None, expand=False)
                elif key == "children":
                    for child_node in self.names(value_node, f"the children of group {name!r}"):
                        self.child(name, self.name(child_node), _line(child_node))
                elif key == "vars":
                    self.variables(value_node, self.parsed.group_vars.setdefault(name, {}),
                                   f"the vars of group {name!r}", group=True)
        self.check_entries(entries)
        for name_node, vars_node in host_vars.items():
            name = self.name(name_node)
            if name in self.parsed.hosts:
                own = {}
                self.variables(vars_node, own, f"the variables of host {name!r}")
                self.parsed.host_vars[name].update(own)


def _kind(node):
    return {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}.get(type(node), "a value")
