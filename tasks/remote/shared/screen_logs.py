"""
This user's screen sessions of a cluster on a host, as ``launch`` in ``lib.sh`` makes them:
which are alive (`session_alive`), and what their logs say (`SessionLog`, `last_line`).

A session's log, ``RUN_DIR/SESSION.log``, holds before each start of the session the line
of ``launch`` (`HEADER`: ``=== DATE: SESSION``, the date in the C locale), then what its
program writes, among it the lines of the nanny that keeps the program
(``=== nanny YYYY-MM-DD HH:MM:SS: TEXT``, written by the nanny's ``say``), one of them per restart
(`RESTART`). The shell side reads these lines with the same patterns, ``LAUNCH_HEADER``
and ``NANNY_RESTART`` in ``lib.sh`` (the tests hold the two to the same text).

Every pattern is anchored to the whole line its writer writes: the hub's lines begin with
ipyparallel's log prefix (``2026-12-07 19:56:19.633 [IPController] WARNING | ``), launch's
and the nanny's at the start of a line. What a peer makes the controller log (a refused
message, a routing id) sits inside a line of the hub's and is never read as one of
them; a line read is used only with fields of the expected form (`engine_uuid`).

The probe (``probe.py``, unpacked beside this file) and the dashboard
(``dashboard/extension.py``, in the master's Jupyter) import it; it uses only the standard library.
"""

import os
import re
import subprocess

#: The beginning of launch's line, up to the session's name (a Python regular expression and
#: a POSIX extended one alike: ``LAUNCH_HEADER`` in lib.sh); its group is the date.
HEADER = "^=== ([A-Z][a-z][a-z] .*): "
#: A restart in the nanny's lines (``NANNY_RESTART`` in lib.sh, the same); its group is the time
#: (no ``{n}``: mawk, Debian's awk, has none).
RESTART = "^=== nanny ([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]): restart: "
#: What the lines of launch and of the nanny begin with, and the program's never do.
MARK = "=== "
#: An engine's uuid, as its supervisor makes it: ``LABEL/N/TIME`` or ``LABEL/N/TIME/HEX16``
#: (LABEL: an inventory host, as ``host_inbox.LABEL``; TIME: nanoseconds since the epoch).
UUID = (r"[A-Za-z0-9_\[][A-Za-z0-9_.:@\[\]-]{0,252}/[1-9][0-9]{0,8}/[0-9]{1,19}"
        r"(?:/[0-9a-f]{16})?")
#: The start of each line of the hub: ipyparallel's ``log_format`` with its ``log_datefmt``.
HUB_LINE = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} \[IPController\] "
#: A registration the hub dropped (a warning), a whole line of the controller's log: its
#: engine's uuid.
PURGED = re.compile(HUB_LINE + r"WARNING \| registration::purging stalled registration"
                    rf" [0-9]{{1,9}}:({UUID})")
_UUID = re.compile(r"([^/]+)/([0-9]+)/([0-9]+)")

_RESTART = re.compile(RESTART)
#: Colours and control codes; a log prefix, ``[I 2026-11-24 23:42:51.662 ServerApp]``.
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
_LOG_PREFIX = re.compile(r"^\[[A-Z] [0-9-]+ [0-9:.]+ [A-Za-z]+\] *")


def session_alive(session):
    """True while this user has a screen session named *session* (``screen -ls`` lists
    ``TAB PID.NAME TAB (Detached)``; ``screens`` in lib.sh reads it for the shell)."""
    listing = subprocess.run(["screen", "-ls"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        pid, dot, name = line.strip().split("\t")[0].partition(".")
        if pid.isdigit() and dot and name == session:
            return True
    return False


class SessionLog:
    """
    What the log *path* of a session says since the session's last start: when it began
    (``started``, launch's date), the nanny's restarts (``restarts``, the time of the last in
    ``last_restart``) and the registrations the hub purged (``purged``, the controller's).

    `read` reads on from where the last read ended: the hub writes two lines per task, and
    a whole read of a log of hours took longer than the hub's answers (measured). A line
    still being written is read the next time; a log shorter than what was read is another
    one, read whole; a log that cannot be read changes nothing.
    """

    def __init__(self, path):
        self.path, self.at = path, 0
        session = os.path.splitext(os.path.basename(path))[0]
        self.header = re.compile(HEADER + re.escape(session) + "$")
        self.begin(None)

    def begin(self, started):
        self.started, self.restarts, self.last_restart, self.purged = started, 0, None, []

    def read(self):
        """Read what the log gained since the last read; returns this `SessionLog`."""
        try:
            with open(self.path, "rb") as log:
                if os.fstat(log.fileno()).st_size < self.at:
                    self.at = 0
                    self.begin(None)
                log.seek(self.at)
                for raw in log:
                    if not raw.endswith(b"\n"):
                        break
                    self.at += len(raw)
                    if b"=== " in raw or b"purging" in raw:  # the rest, most of it, is the hub's
                        self.take(raw.decode(errors="replace").rstrip())
        except OSError:
            pass
        return self

    def take(self, line):
        """One whole line of the log."""
        if (start := self.header.match(line)):
            self.begin(start[1])
        elif (restart := _RESTART.match(line)):
            self.restarts, self.last_restart = self.restarts + 1, restart[1]
        elif (purged := PURGED.fullmatch(line)):
            self.purged.append(purged[1])


def engine_uuid(uuid):
    """``(label, number, start time)`` (the last two ints) of an engine's *uuid* (`UUID`), or
    None for anything else: what a log or a peer said is used only in this form."""
    if not isinstance(uuid, str) or not re.fullmatch(UUID, uuid):
        return None
    label, number, started = _UUID.match(uuid).groups()
    return label, int(number), int(started)


def last_line(log):
    """The last line a program wrote in its screen log *log*, without colours, control codes
    and log prefix, and without the lines of launch and of the nanny; '' when there is none."""
    try:
        with open(log, "rb") as file:
            file.seek(max(0, os.path.getsize(log) - 4096))
            text = file.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [_LOG_PREFIX.sub("", _CONTROL.sub("", line)).strip() for line in text.splitlines()]
    return next((line for line in reversed(lines) if line and not line.startswith(MARK)), "")
