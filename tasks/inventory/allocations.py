"""
Slurm allocations in the inventory: a child group of ``engines`` (at any depth) that has no
hosts and ``slurm_nodes=N`` among its variables is one job of N nodes, with engines on each
(`tasks.steps.slurm.allocations` submits and watches it)::

    [engines:children]
    cpu_alloc

    [cpu_alloc]

    [cpu_alloc:vars]
    slurm_nodes=4
    slurm_partition=cpu
    slurm_time=04:00:00
    slurm_options='--qos=normal --constraint=avx2'

Its variables are ``all``'s, then its parent groups' (from the shallowest), then its own,
as a host's would be: ``slurm_partition``, ``slurm_time``, ``slurm_account`` and
``slurm_options`` (sbatch's other options, one string), and ``engines`` (per node), ``threads``,
``gpus`` and ``setup`` as on a host. ``slurm_master=yes`` (one allocation at most, its own
variable) puts the controller and Jupyter on the first node of its job instead of the
master, which then only runs the Slurm commands and leads SSH to that node.

The keeper (``tasks/remote/master/keeper.py``) keeps ``slurm_jobs`` jobs of that shape
(``N``, default 1; ``MIN-MAX``: MIN for now) and, unless ``slurm_renew=no``, submits each
one's successor before its end (``slurm_renew=SECONDS`` before it; default: sized from
``slurm_time`` and the queue's wait). ``slurm_idle`` (default 300 s) is read for the
adaptive keeper to come. Pure.
"""

import re
import shlex
from dataclasses import dataclass

from . import groups, variables

#: The sbatch options this project sets itself: slurm_options may not hold them.
OWN_OPTIONS = ("-N", "--nodes", "-J", "--job-name", "--comment", "-o", "--output", "-e",
               "--error", "--parsable", "--test-only", "--wrap", "-a", "--array", "--signal",
               "-n", "--ntasks", "--ntasks-per-node", "-D", "--chdir")


@dataclass(frozen=True)
class Allocation:
    """One Slurm allocation of the inventory: the group *name* and what its job asks for."""

    name: str
    nodes: int
    partition: str = None
    time: str = None
    account: str = None
    options: tuple = ()  # sbatch's other options, as words
    engines: int = None  # per node; None: one per CPU Slurm allocates there
    threads: int = None
    gpus: str = None
    setup: str = ""
    master: bool = False  # its job's first node runs the controller and Jupyter
    jobs: tuple = (1, 1)  # (MIN, MAX) jobs of this shape at once (slurm_jobs)
    idle: int = 300  # seconds engines above MIN may stay idle (slurm_idle)
    renew: int = None  # seconds before a job's end its successor is submitted; None: sized; 0: no


def read(parsed, error_at):
    """The allocations of *parsed* (a `tasks.inventory.groups.Parsed`), in file order, or
    an error at the line of the first problem."""
    depths = groups._depths(parsed)
    found = []
    for name, group in parsed.groups.items():
        own = parsed.group_vars.get(name, {})
        line = parsed.vars_lines.get(name, 0)
        if "slurm_nodes" not in own:
            continue
        if group.hosts:
            raise error_at(line)(f"{parsed.group(name)} has hosts and slurm_nodes=: an allocation"
                                 " is a group without hosts; Slurm chooses its nodes")
        if group.children:
            raise error_at(line)(f"{parsed.group(name)} has children and slurm_nodes=: an "
                                 "allocation is a group of its own, without children")
        if name not in _descendants(parsed, "engines"):
            raise error_at(line)(f"{parsed.group(name)} has slurm_nodes= but is not a child of "
                                 f"{parsed.group('engines')}: name it under engines' children")
        merged = dict(parsed.group_vars.get("all", {}))
        for parent in sorted(_ancestors(parsed, name), key=lambda g: (
                depths[g], parsed.group_vars.get(g, {}).get(variables.PRIORITY, 1), g)):
            merged.update(parsed.group_vars.get(parent, {}))
        merged.update(own)
        found.append(_allocation(name, merged, error_at(line)))
        if "slurm_master" in merged and "slurm_master" not in own:
            raise error_at(line)(f"{parsed.group(name)} inherits slurm_master=: set it on the one "
                                 "allocation whose first node runs the controller")
        if found[-1].master and found[-1].jobs != (1, 1):
            raise error_at(line)(f"{parsed.group(name)} has slurm_master=yes and slurm_jobs=: the "
                                 "controller's allocation is one job")
        if found[-1].master and sum(a.master for a in found) > 1:
            raise error_at(line)(f"{parsed.group(name)} has slurm_master=yes, as has "
                                 f"{next(a.name for a in found if a.master)}: one runs the controller")
    return tuple(found)


#: An allocation's name: it names its job, its record file and its lines of output.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _allocation(name, merged, error):
    if not _NAME.match(name):
        raise error(f"allocation {name!r}: its name must be letters, digits, '_', '.' or '-'")
    words = shlex.split(merged.get("slurm_options", ""))
    if merged.get("gpus") == "auto" and not any(
            word.startswith(("--gres", "--gpus", "-G")) for word in words):
        raise error(f"gpus=auto in allocation {name!r} takes the GPUs Slurm binds to the job: ask "
                    "for them in slurm_options (--gres=gpu:N or --gpus-per-node=N)")
    for word in words:
        option = word.split("=", 1)[0]
        if option in OWN_OPTIONS or re.match(r"^-[NJoenaD].+", word):
            raise error(f"slurm_options of {name!r} holds {word!r}: this project sets "
                        f"{option[:2] if not option.startswith('--') else option} itself "
                        "(slurm_nodes=, engines=, the job's name and output)")
    return Allocation(name=name, nodes=merged["slurm_nodes"], partition=merged.get("slurm_partition"),
                      time=merged.get("slurm_time"), account=merged.get("slurm_account"),
                      options=tuple(words), engines=merged.get("engines"),
                      threads=merged.get("threads"), gpus=merged.get("gpus"),
                      setup=merged.get("setup", ""), master=merged.get("slurm_master", False),
                      jobs=merged.get("slurm_jobs", (1, 1)), idle=merged.get("slurm_idle", 300),
                      renew=merged.get("slurm_renew"))


def _descendants(parsed, name):
    """Every group below *name* (its children, theirs...)."""
    found = set()
    for child, _ in parsed.groups.get(name, groups.Group()).children:
        if child not in found:
            found |= {child} | _descendants(parsed, child)
    return found


def _ancestors(parsed, name):
    """Every group above *name*."""
    return {group for group in parsed.groups if name in _descendants(parsed, group)}


def seconds(limit):
    """A Slurm time (an inventory's ``slurm_time``, squeue's time left) in seconds: MINUTES,
    MINUTES:SECONDS, HOURS:MINUTES:SECONDS, or DAYS-HOURS[:MINUTES[:SECONDS]]."""
    days, dash, rest = limit.partition("-")
    if not dash:
        days, rest = "0", limit
    parts = [int(part) for part in rest.split(":")]
    if dash:
        hours, minutes, secs = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, secs = parts
    else:
        hours, minutes, secs = 0, parts[0], (parts + [0])[1]
    return int(days) * 86400 + hours * 3600 + minutes * 60 + secs
