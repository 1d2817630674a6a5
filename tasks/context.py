"""
What every task starts with: the inventory, read before any host is contacted,
and a `Session` on it: a `Fleet` of connections configured from Fabric's own config
(``-i``, ``--ssh-config``, ``-t`` and friends are honoured), and the one place that
decides where the master runs.
"""

import sys
from dataclasses import replace

from invoke.exceptions import Exit

from .inventory.folder import InventoryError, load_inventory, parse_host, with_settings
from .show import report
from .ssh.fleet import Fleet
from .steps.slurm.master_job import master_in_job
from .steps.status import read_status

#: What ``fab -h TASK`` says of the inventory, for every task that reads it.
INVENTORY_NOTE = """
    Reads the inventory folder $CLUSTER_INVENTORY (default: inventory/ in the
    project): hosts, hosts.yml or hosts.json (which host plays which role) and
    cluster.env (the settings).
"""


def reads_inventory(function):
    """Say in *function*'s docstring (shown by ``fab -h TASK``) where the inventory comes from."""
    function.__doc__ = (function.__doc__ or "").rstrip() + "\n" + INVENTORY_NOTE
    return function


def load(master=None):
    """
    Read the inventory (``$CLUSTER_INVENTORY`` or ``inventory/``), or exit with its error.

    :param master: a host string that replaces the inventory's master (``fab -H``).
    """
    try:
        inventory = load_inventory()
        if master is not None:
            host = with_settings(parse_host(master, "-H", 0), inventory.settings)
            inventory = replace(inventory, master=host)
    except InventoryError as error:
        raise Exit(f"error: {error}", code=2) from None
    for line in inventory.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return inventory


#: What a `Session` does when the job whose first node runs the master (``slurm_master=yes``)
#: does not run: exit 1 saying so, and what starts it (for a task that needs the controller)...
EXIT = "exit"
#: ... or go on with the login node as the master, where nothing of the cluster runs (for a
#: task that stops or shows what runs: it finds nothing there, and says so).
LOGIN_NODE = "login node"


class Session:
    """
    One task's hold on the cluster: the inventory as written (`written`), its connections
    (`fleet`), and the inventory with its master where the controller and Jupyter run
    (`inventory`), decided here and nowhere else.

    That is the inventory's master, or with an allocation of ``slurm_master=yes`` the first
    node of its running job, reached through the login node (the master as written, where
    Slurm's commands run; `tasks.steps.slurm.master_job.master_in_job`). Slurm is asked once, at
    the first use of `inventory` (cluster.up uses it once the job runs), and the answer kept.
    When that job does not run, *if_no_job* says what happens: `EXIT` or `LOGIN_NODE`.

    Steps get `inventory`; `written` is for what acts on the hosts as the inventory names
    them (info, check, install, the checks before a start) and for Slurm's commands.
    """

    def __init__(self, fleet_, written, if_no_job=EXIT):
        if if_no_job not in (EXIT, LOGIN_NODE):
            raise ValueError(f"if_no_job={if_no_job!r}: must be {EXIT!r} or {LOGIN_NODE!r}")
        self.fleet = fleet_
        self.written = written
        self.if_no_job = if_no_job
        self._found = None  # (inventory, problem), once asked

    @property
    def inventory(self):
        """The inventory with its master where the controller and Jupyter run (see the class)."""
        if self._found is None:
            self._found = master_in_job(self.fleet, self.written)
        running, problem = self._found
        if problem and self.if_no_job == EXIT:
            raise Exit(f"error: {problem}", code=1)
        return running

    @property
    def master(self):
        """The host where the controller and Jupyter run: `inventory`'s master."""
        return self.inventory.master

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fleet.close()


def session(c, inventory, if_no_job=EXIT):
    """A `Session` on *inventory* with the task context's Fabric config, for a ``with``
    block (its connections close at its end); *if_no_job*: see `Session`."""
    return Session(Fleet(inventory.settings, c.config), inventory, if_no_job)


def whole_number(option, value, low, high):
    """The value of a command-line *option* as a whole number from *low* to *high*, or exit 2."""
    text = str(value).strip()
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise Exit(f"error: --{option}={value}: must be a whole number from {low} to {high}",
                   code=2)
    return int(text)


#: The help of every ``--hosts`` option.
HOSTS_HELP = "only these hosts: comma-separated inventory names or patterns (node0*)"
JSON_HELP = "one JSON document on stdout instead of the table (its schema: docs/json.md)"


def choose(inventory, role="", hosts=""):
    """The hosts that ``--role`` and ``--hosts`` (comma-separated names or patterns) choose,
    or exit 2 naming the bad option."""
    if role not in ("", "master", "engines"):
        raise Exit(f"error: --role={role}: must be master or engines", code=2)
    try:
        return inventory.select(role or None, [h for h in hosts.split(",") if h])
    except ValueError as error:
        raise Exit(f"error: --hosts={hosts}: {error}", code=2) from None


def show_status(c, command, stopped, hosts=None, json=False, **roles):
    """
    What the status tasks do: read the status of the hosts *hosts* chooses (``--hosts``;
    all of the roles asked for when empty, see `choose`; the master alone when None),
    print it (a table, or with *json* one document), and exit 0 only if all is as wanted.
    Names of Slurm allocations among *hosts* choose those allocations' rows.
    *command* names the task (``engines.status``); *stopped* says what to do when nothing
    runs (not said of chosen hosts; ``{name}`` in it is the cluster's name); *roles* (``master=False``, ``engines=False``) go to
    `read_status`.
    """
    inventory = load()
    role = "" if roles.get("master", True) else "engines"
    names = [name for name in (hosts or "").split(",") if name]
    allocated = inventory.chosen_allocations(names)
    others = [name for name in names if name not in inventory.allocation_names(names)]
    def chosen_in(inventory):
        return None if hosts is None else () if names and not others else choose(
            inventory, role, ",".join(others))
    chosen_in(inventory)  # a bad option is said before any host is contacted
    with session(c, inventory, if_no_job=LOGIN_NODE) as cluster:
        inventory = cluster.inventory
        rows = read_status(cluster.fleet, inventory, hosts=chosen_in(inventory),
                           allocations=allocated, **roles).rows
    stopped = None if hosts else stopped.format(name=inventory.settings.cluster_name)
    report.status_and_exit(command.split(".")[0], rows, stopped=stopped,
                           as_json=json and (command, inventory.settings.cluster_name))
