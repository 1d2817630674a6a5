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

# Piped output (CI, logs) gets room for a wide table instead of rich's default 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _mark(ok):
    return "[green]ok[/]" if ok else "[red]FAILED[/]"


def results_table(title, results, columns=()):
    """
    Print a table of `HostResult`s: host, state, the facts named in *columns*, reason.

    :param columns: ``(heading, fact)`` pairs.
    """
    table = Table(title=title, title_justify="left")
    for heading in ["host", "state", *(c[0] for c in columns), "detail"]:
        table.add_column(heading)
    for name, result in results.items():
        table.add_row(name, _mark(result.ok) if result.ok else f"[red]{result.state}[/]",
                      *(result.facts.get(fact, "") for _, fact in columns), result.reason)
    console.print(table)


def status_table(title, rows):
    """Print the rows of `tasks.lifecycle.read_status`."""
    table = Table(title=title, title_justify="left")
    for heading in ("host", "roles", "reachable", "sessions", "engines", "problems"):
        table.add_column(heading)
    for row in rows:
        engines = "" if row["expected"] is None else f"{row['registered']}/{row['expected']}"
        table.add_row(row["host"], ",".join(row["roles"]),
                      "no" if row["state"] == "unreachable" else "yes",
                      str(len(row["sessions"])), engines,
                      "[red]" + "; ".join(row["problems"]) + "[/]" if row["problems"] else "[green]ok[/]")
    console.print(table)


def status_and_exit(title, rows):
    """Print the status rows, then exit non-zero naming each host that is not as wanted."""
    status_table(title, rows)
    fail_if([f"{row['host']}: {'; '.join(row['problems'])}" for row in rows if row["problems"]])


def engines_table(expected, registered):
    """Print engines registered against expected, a row per host, and the total."""
    table = Table(title="engines", title_justify="left")
    for heading in ("host", "registered", "expected", ""):
        table.add_column(heading)
    for host, want in expected.items():
        have = registered.get(host, 0)
        table.add_row(host, str(have), str(want), _mark(have == want))
    table.add_row("total", str(sum(registered.get(h, 0) for h in expected)),
                  str(sum(expected.values())), "")
    console.print(table)


def jupyter_url(port, token):
    """The Jupyter URL on a local *port* (the master's own, or a tunnel's) with its *token*."""
    return f"http://localhost:{port}/?token={token}"


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
