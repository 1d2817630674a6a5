"""
One engine's life under the supervisor (``supervisor.py``): its state, its log, and what
happens after it ends, by the nanny's rules (``nanny.Restarts``): an end with exit code 0 was a
shutdown asked for, and it stays stopped; any other is a crash, after which it starts again
after 1, 2, 4, ... at most 60 s (unless ENGINE_RESTART=no), and at the crash after
``GIVE_UP_AFTER`` in ``WINDOW`` s it is given up on (its log and its ``.gaveup`` marker say
why, for ``host_status.sh``). A renewal (the controller dropped its registration) starts
it again at once, and is no crash.

Each start registers with an identity of its own, ``LABEL/N/TIME/RANDOM`` (the controller
counts the engine under its host; RANDOM: 16 hex digits), which reaches ipengine in a
config file only the user reads, never on its command line (see `Engine.write_session`).
"""

import json
import os
import secrets
import subprocess
import time

from ..shared import nanny


_DATE = [None, ""]  # the second launch_date last asked for, and date's answer


def launch_date():
    """The date of a launch line: ``date``'s in the C locale, the program that lib.sh's
    ``launch_header`` runs (one format: the shell's), asked at most once a second (a
    wave starts many engines); '' when it cannot answer."""
    second = int(time.time())
    if _DATE[0] != second:
        try:
            _DATE[1] = subprocess.run(["date"], env={**os.environ, "LC_ALL": "C"}, stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            _DATE[1] = ""
        _DATE[0] = second
    return _DATE[1]


class Engine:
    """Engine *number*, whose files begin with *stem* (``RUN_DIR/NAME-engine-N``)."""

    def __init__(self, number, stem):
        self.number, self.log_path, self.marker = number, f"{stem}.log", f"{stem}.gaveup"
        self.session_file = f"{stem}.session.json"
        self.child = None  # its `engine_fork.Child`
        self.kernel_nanny = None  # its KernelNanny's pid, till reaped (ipyparallel's, not nanny.py)
        self.state = "waiting"  # waiting, running, stopped, gaveup
        self.due = 0.0          # monotonic time of the next start, while waiting
        self.restarts = nanny.Restarts("the engine")
        self.starts, self.renewing, self.why = 0, False, ""
        self.rss, self.tree = 0, []

    def facts(self, limit):
        """What ``NAME-engines.json`` says of it."""
        return {"pid": self.child.pid if self.child else None, "state": self.state,
                "starts": self.starts, "rss": self.rss, "limit": limit}

    def write(self, line):
        """*line* in its log (a full disk loses it, and nothing else)."""
        try:
            with open(self.log_path, "a") as log:
                log.write(line + "\n")
        except OSError:
            pass

    def note(self, text):
        """A line of the supervisor's in its log, as the nanny writes them."""
        self.write(nanny.line(text))

    def launched(self, name):
        """The launch line before its first start, as lib.sh's ``launch_header`` writes it
        (see `launch_date`); none when ``date`` cannot answer."""
        date = launch_date()
        if date:
            self.write(f"\n=== {date}: {name}-engine-{self.number}")

    def write_session(self, label):
        """A new identity for this start, ``LABEL/N/TIME/RANDOM``, written as ipengine's
        ``Session.session`` into `session_file` (0600, in the private run directory); the
        path, for ipengine's ``--config=``. On a command line, any user of the host would
        read it in /proc, and could connect first with it when the engine's sockets
        reconnect, and so receive its tasks; RANDOM makes it unguessable besides."""
        session = f"{label}/{self.number}/{time.time_ns()}/{secrets.token_hex(8)}"
        self.forget_session()
        fd = os.open(self.session_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as config:
            json.dump({"Session": {"session": session}}, config)
        return self.session_file

    def forget_session(self):
        """Remove `session_file`: the start it was for has ended (or never began)."""
        try:
            os.remove(self.session_file)
        except OSError:
            pass

    def forget_giving_up(self):
        """Start afresh (``engines.start``): no crash counts, no marker."""
        self.restarts.forget()
        try:
            os.remove(self.marker)
        except OSError:
            pass

    def after_end(self, code, why, restart, stopping):
        """It ended with exit *code* (*why*: how, when known): wait to start again, or not."""
        now = time.monotonic()
        why, self.why = why or self.why or nanny.describe(code), ""
        if stopping:
            self.state = "stopped"
        elif self.renewing:
            self.note("renewal: the controller dropped this engine's registration;"
                     " starting it again now")
            self.state, self.due = "waiting", now
        elif code == 0:
            self.state = "stopped"
        elif not restart:
            self.note(f"the engine ended ({why}); ENGINE_RESTART=no: it stays stopped")
            self.state = "stopped"
        else:
            delay = self.restarts.crashed(now)
            if delay is None:
                self.give_up(self.restarts.give_up_line(why))
            else:
                self.note(self.restarts.restart_line(why, delay))
                self.state, self.due = "waiting", now + delay

    def give_up(self, line):
        self.note(f"{line}; fab engines.restart starts it again")
        try:
            with open(self.marker, "w") as marker:
                marker.write(line + "\n")
        except OSError:
            pass
        self.state = "gaveup"
