"""
Live progress while engines register: a bar on a terminal, plain lines elsewhere.

The master's probe (`tasks.remote.master.probe`) prints a ``progress={...}`` line each time the
registered counts change; `ProgressStream` is the ``out_stream`` that Fabric
writes the probe's output to, and turns those lines into updates.
"""

import json
import time
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from .report import console

#: After this many seconds, progress names the hosts that are still short.
SLOW_AFTER = 5.0
#: How many of the hosts that are short progress names; the others are summed.
SHORT_NAMED = 4


class EngineProgress:
    """Shows engines registered out of *expected* (``{host: count}``) until closed."""

    def __init__(self, expected):
        self.expected = expected
        self.total = sum(expected.values())
        self.started = time.monotonic()
        self.last_line = None
        self.bar = None
        if console.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
            self.task = self.bar.add_task("engines registered", total=self.total)

    def describe(self, counts):
        """``engines registered: 4/6`` and, once slow, the hosts that are short (see `short_hosts`)."""
        done = sum(min(counts.get(host, 0), want) for host, want in self.expected.items())
        text = f"engines registered: {done}/{self.total}"
        if done < self.total and time.monotonic() - self.started > SLOW_AFTER:
            text += "; waiting for " + short_hosts(self.expected, counts)
        return done, text

    def update(self, counts):
        done, text = self.describe(counts)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=text)
        elif text != self.last_line:
            console.print(text)
        self.last_line = text

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def short_hosts(expected, counts, named=SHORT_NAMED):
    """
    The hosts short of their count, the shortest first: ``node3 2/50, node1 40/50``; past
    *named* of them, the others summed (``and 12 more hosts short of 40 engines``).
    """
    short = sorted(((want - counts.get(host, 0), host, want) for host, want in expected.items()
                    if counts.get(host, 0) < want), key=lambda item: (-item[0], item[1]))
    text = ", ".join(f"{host} {want - missing}/{want}" for missing, host, want in short[:named])
    rest = short[named:]
    if rest:
        text += (f" and {len(rest)} more host{'s' if len(rest) > 1 else ''} short of "
                 f"{sum(missing for missing, _, _ in rest)} engines")
    return text


class ProgressStream:
    """A write-only stream that feeds ``progress={...}`` lines to an `EngineProgress`."""

    def __init__(self, progress):
        self.progress = progress
        self.pending = ""

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.startswith("progress="):
                self.progress.update(json.loads(line[len("progress="):]))

    def flush(self):
        pass


@contextmanager
def watching(expected):
    """Show engines registering out of *expected* while the block runs; yields the stream
    for the probe's output (``watch`` of `tasks.steps.lifecycle.engines_up`)."""
    with EngineProgress(expected) as progress:
        yield ProgressStream(progress)
