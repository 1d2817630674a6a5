"""
What an inventory file says, whatever its format (`Parsed`), and the one resolution of it,
as Ansible resolves it: the roles from the groups ``master`` and ``engines`` (with their
children), and each host's variables from ``all``, then its groups from the shallowest
(then by ``ansible_group_priority``, then by name), then its own.

The readers (`tasks.inventory.hostsfile` for INI, `tasks.inventory.yamlfile` for YAML and
JSON) fill a `Parsed`; `resolve` is the same for all of them, so they cannot drift.
Pure: every problem raises the error that *error_at(line)* makes.
"""

from dataclasses import dataclass, field

from .variables import PRIORITY


@dataclass
class Group:
    """A group of the file: its own hosts, and the groups it names as children."""

    hosts: dict = field(default_factory=dict)       # host names (keys), in file order
    children: list = field(default_factory=list)    # (group name, line)


@dataclass
class Parsed:
    """What the file says: each host's text, its own variables, and the groups."""

    path: str
    ini: bool = True                                # the wording of messages: [master] or group
    hosts: dict = field(default_factory=dict)       # name -> (Host from its NAME, first line)
    host_vars: dict = field(default_factory=dict)   # name -> {key: value}
    groups: dict = field(default_factory=dict)      # group name -> Group ("all": never)
    group_vars: dict = field(default_factory=dict)  # group name -> {key: value} ("all" too)
    vars_lines: dict = field(default_factory=dict)  # group name -> line of its variables
    ignored: set = field(default_factory=set)       # ansible_* names that are ignored

    def group(self, name):
        """The role group *name* as the file writes it: ``[master]`` or ``group 'master'``."""
        return f"[{name}]" if self.ini else f"group {name!r}"


def members(parsed, name):
    """The host names of group *name* and of its children, each once, in file order."""
    group = parsed.groups.get(name)
    if group is None:
        return []
    found = list(group.hosts)
    for child, _ in group.children:
        found += members(parsed, child)
    return list(dict.fromkeys(found))


def _check_groups(parsed, error_at):
    """Variables of an unknown group, or a group that is its own child: an error."""
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
    """Each group's depth: 1 for a group that is nobody's child (a child of ``all``), else
    one more than its deepest parent's (Ansible applies group variables from the shallowest)."""
    parents = {name: [p for p, g in parsed.groups.items() if name in dict(g.children)]
               for name in parsed.groups}
    depths = {}

    def depth(name):
        if name not in depths:
            depths[name] = 1 + max((depth(p) for p in parents[name]), default=0)
        return depths[name]
    return {name: depth(name) for name in parsed.groups}


def groups_of(parsed):
    """``{host name: [group, ...]}``: each host's groups in Ansible's order of precedence,
    weakest first: by depth, then ``ansible_group_priority`` (default 1), then name."""
    depths = _depths(parsed)
    order = sorted(parsed.groups, key=lambda g: (
        depths[g], parsed.group_vars.get(g, {}).get(PRIORITY, 1), g))
    found = {name: [] for name in parsed.hosts}
    for group in order:
        for name in members(parsed, group):
            found[name].append(group)
    return found


def resolve(parsed, error_at):
    """
    ``(master name, [engine host names], {host name: variables})`` after checking the groups.

    The master is the one host of ``master`` (with its children); the engine hosts are
    those of ``engines``, in the order the file first names them. A host's variables
    are ``all``'s, then its groups' (see `groups_of`), then its own.
    """
    _check_groups(parsed, error_at)
    masters = members(parsed, "master")
    if not masters:
        raise error_at(0)(f"no {parsed.group('master')} section with a host" if parsed.ini
                          else "no group 'master' with a host (all: children: master: hosts:)")
    if len(masters) > 1:
        raise error_at(parsed.hosts[masters[1]][1])(
            f"{parsed.group('master')} must hold exactly one host")
    order = {name: position for position, name in enumerate(parsed.hosts)}
    engines = sorted(members(parsed, "engines"), key=order.__getitem__)
    variables = {}
    for name, groups in groups_of(parsed).items():
        merged = dict(parsed.group_vars.get("all", {}))
        for group in groups:
            merged.update(parsed.group_vars.get(group, {}))
        merged.pop(PRIORITY, None)
        variables[name] = merged | parsed.host_vars[name]
    return masters[0], engines, variables


def warning(parsed):
    """The one warning line about ignored Ansible variables, or None."""
    if not parsed.ignored:
        return None
    return f"{parsed.path}: ignored (they mean nothing here): " + ", ".join(sorted(parsed.ignored))
