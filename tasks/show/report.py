"""
Show per-host results as tables, and turn failures into the task's exit status.

Tasks print through these helpers so that every command names each failed host
with its reason in the same way, and exits non-zero exactly when something the
user asked for does not hold.
"""

import sys

from invoke.exceptions import Exit
from rich.console import Console
from rich.table import Table

from . import documents

# Piped output (CI, logs) gets room for a wide table instead of rich's default 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _mark(ok):
    return "[green]ok[/]" if ok else "[red]FAILED[/]"


def results_table(title, results, columns=(), problems=None):
    """
    Print a table of `HostResult`s: host, state, the facts named in *columns*, reason.

    :param columns: ``(heading, fact)`` pairs.
    :param problems: ``{host name: [problem, ...]}`` found in the results: such a
        host's state is ``not ready``, never ``ok``, and its detail names them.
    """
    problems = problems or {}
    table = Table(title=title, title_justify="left")
    for heading in ["host", "state", *(c[0] for c in columns), "detail"]:
        table.add_column(heading)
    for name, result in results.items():
        state, detail = result.state, result.reason
        if result.ok and problems.get(name):
            state, detail = "not ready", "; ".join(problems[name])
        table.add_row(name, _mark(True) if state == "ok" else f"[red]{state}[/]",
                      *(result.facts.get(fact, "") for _, fact in columns), detail)
    console.print(table)


def hosts_table(listing):
    """Print the inventory as resolved (`tasks.inventory.folder.Inventory.listing`)."""
    table = Table(title=f"hosts (master: {listing['master']})", title_justify="left")
    columns = ("name", "roles", "address", "port", "user", "key", "engines", "threads", "gpus",
               "setup")
    for heading in columns:
        table.add_column("host" if heading == "name" else heading)
    for host in listing["hosts"]:
        cells = {**host, "roles": ",".join(host["roles"])}
        table.add_row(*("" if cells[c] is None else str(cells[c]) for c in columns))
    console.print(table)
    if listing.get("allocations"):
        table = Table(title="Slurm allocations (a job each, submitted on the master)", title_justify="left")
        columns = ("name", "nodes", "partition", "time", "account", "options", "engines", "threads",
                   "gpus", "setup")
        for heading in columns:
            table.add_column("allocation" if heading == "name" else heading)
        for allocation in listing["allocations"]:
            cells = {**allocation, "options": " ".join(allocation["options"])}
            table.add_row(*("" if cells[c] is None else str(cells[c]) for c in columns))
        console.print(table)


def status_table(title, rows):
    """Print the rows of `tasks.steps.status.read_status`."""
    table = Table(title=title, title_justify="left")
    for heading in ("host", "roles", "reachable", "sessions", "engines", "restarts", "threads",
                    "cpu", "memory", "problems"):
        table.add_column(heading)
    for row in rows:
        cpu, memory = _resources(row.get("resources"))
        engines = "" if row["expected"] is None else f"{row['registered']}/{row['expected']}"
        restarts = "" if row.get("restarts") is None else str(row["restarts"])
        said = "[red]" + "; ".join(row["problems"]) + "[/]" if row["problems"] else "[green]ok[/]"
        if row.get("notes"):
            said += "; [yellow]" + "; ".join(row["notes"]) + "[/]"
        job = row.get("job")  # a Slurm allocation's: its job where a host has its sessions
        sessions = f"job {job['id']} {job['state']}" if job else str(len(row["sessions"]))
        table.add_row(row["host"], ",".join(row["roles"]),
                      {"unreachable": "no", "auth failed": "no login"}.get(row["state"], "yes"),
                      sessions, engines, restarts, row.get("threads") or "",
                      cpu, memory, said)
    console.print(table)


def _resources(resources):
    """The cpu and memory cells of a host whose supervisor sampled *resources*: ``37%``,
    ``3.1 of 16 GiB`` (no slash: the engines cell is the one that reads ``2/2``); empty
    while unknown."""
    if not resources:
        return "", ""
    gib = 1 << 30
    return (f"{resources.get('cpu_percent', 0):.0f}%",
            f"{resources.get('memory_used', 0) / gib:.1f} of {resources.get('memory_total', 0) / gib:.0f} GiB")


def status_and_exit(title, rows, stopped=None, as_json=None):
    """
    Print the status rows, then exit non-zero naming each host that is not as wanted.
    When every host answered and none runs anything of the cluster, say only *stopped*
    (exit 3, as a stopped service's status does), and which Slurm jobs of it ended without
    its commands. *as_json*: ``(command, cluster name)``, to print the JSON document
    (`tasks.show.documents.status`) instead of the table.
    """
    is_stopped = bool(stopped) and all(row["state"] == "ok" and not row["sessions"]
                                       and not row.get("unsupervised")
                                       and not (row.get("job") or {}).get("active") for row in rows)
    if as_json:
        documents.dump(documents.status(*as_json, rows, is_stopped))
    if is_stopped:
        ended = [f"{row['host']}: {'; '.join(row['problems'])}" for row in rows
                 if row.get("job") and row["problems"]]
        raise Exit("\n".join([stopped, *ended]), code=3)
    if not as_json:
        status_table(title, rows)
    fail_if([f"{row['host']}: {'; '.join(row['problems'])}" for row in rows if row["problems"]])


def engines_table(up, order):
    """
    Print what bringing engines up did (a `tasks.steps.lifecycle.EnginesUp`): a row for each
    host of *order* (inventory names) that was started, failed or skipped, and the total.
    """
    table = Table(title="engines", title_justify="left")
    for heading in ("host", "registered", "expected", "threads", "state", "detail"):
        table.add_column(heading)
    registered, asked = up.registered or {}, up.registered is not None  # else counts are "?"
    good = 0
    for name in order:
        if name in up.expected:
            have, want = registered.get(name, 0), up.expected[name]
            good += have == want
            details = [] if have == want else ["not all registered"]
            if name in up.renewed:
                details.append(_renewed(up.renewed[name]))
            table.add_row(name, str(have) if asked else "?", str(want),
                          up.started[name].facts.get("threads", ""), _mark(have == want),
                          "; ".join(details))
        elif name in up.started:
            result = up.started[name]
            table.add_row(name, "", "", "", f"[red]{result.state}[/]", result.reason)
        elif name in up.skipped:
            state, why = up.skipped[name]
            table.add_row(name, "", "", "", f"[red]{state}[/]", why)
    hosts = [name for name in order if name in up.expected or name in up.started
             or name in up.skipped]
    total = sum(registered.get(name, 0) for name in up.expected)
    table.add_row("total", str(total) if asked else "?",
                  str(sum(up.expected.values())), "", _mark(good == len(hosts)),
                  "" if good == len(hosts) else f"{good} of {len(hosts)} hosts as expected")
    console.print(table)


def allocations_table(up):
    """Print what bringing Slurm allocations up did (a `tasks.steps.slurm.allocations.AllocationsUp`):
    a row per node of each job that runs, a row for each job that does not."""
    table = Table(title="allocations", title_justify="left")
    for heading in ("allocation", "job", "state", "node", "registered", "expected", "time left"):
        table.add_column(heading)
    registered = up.registered or {}
    for name, job in up.jobs.items():
        for node in up.groups.get(name) or [""]:
            want = up.expected.get(node)
            have = registered.get(node, 0) if up.registered is not None else "?"
            table.add_row(name, job.id, job.state, node, "" if want is None else str(have),
                          "" if want is None else str(want), job.left)
    console.print(table)


#: How many of a host's engines started again the engines table names.
RENEWED_NAMED = 5


def _renewed(numbers):
    """What the detail column says of the orphan engines *numbers* started again."""
    numbers = sorted(numbers)
    which = ", ".join(str(n) for n in numbers[:RENEWED_NAMED])
    if len(numbers) > RENEWED_NAMED:
        which += f" and {len(numbers) - RENEWED_NAMED} more"
    return (f"engine{'s' if len(numbers) > 1 else ''} {which} started again: "
            "the controller had dropped the registration")


def jupyter_url(port, token):
    """
    The Jupyter URL on a local *port* (the master's own, or a tunnel's) with its *token*.
    ``127.0.0.1``, where Jupyter and the tunnel listen, never ``localhost``: a browser may
    try ``[::1]`` for that first, a port that any user of the machine can hold.
    """
    return f"http://127.0.0.1:{port}/?token={token}"


def dashboard_url(port, token):
    """The dashboard's URL (``tasks/remote/jupyter/dashboard/extension.py``, a page of that Jupyter)."""
    return f"http://127.0.0.1:{port}/ipp-dashboard/?token={token}"


def fail_if(problems):
    """Exit non-zero with one line per problem (``host: reason``), if there are any."""
    if problems:
        raise Exit("\n".join(f"error: {line}" for line in problems), code=1)


def lines(problems):
    """``host: problem`` lines from ``{host: [problem, ...]}``."""
    return [f"{host}: {problem}" for host, found in problems.items() for problem in found]


def failures(results):
    """The ``host: reason`` lines of the results that did not succeed."""
    return [f"{name}: {result.reason}" for name, result in results.items() if not result.ok]
