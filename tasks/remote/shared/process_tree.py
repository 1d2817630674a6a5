"""
The processes of a program that the nanny (``tasks/remote/shared/nanny.py``) or the engines'
supervisor (``supervisor.py``) keeps: the program and all it started, their resident
memory, and ending what the program left behind. All of it is read through psutil.

``start_engines.sh`` and ``start_master.sh`` unpack this file beside them in the run
directory, where they import it.
"""

import ctypes
import os
import signal
import time
from dataclasses import dataclass

import psutil

PR_SET_CHILD_SUBREAPER = 36


def tree(pid):
    """The process *pid* and all its descendants, as psutil processes ([] once gone).
    psutil reads the parent of every process in /proc for it (kernels without
    /proc/PID/task/TID/children have no cheaper way): the nanny does it every few
    seconds only."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def alone(pid):
    """The process *pid* as a `tree` without its descendants, read without a scan of /proc."""
    try:
        return [psutil.Process(pid)]
    except psutil.Error:
        return []


def resident(processes):
    """Resident memory in bytes of the psutil *processes* (0 for those that are gone)."""
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def alive(pid):
    """Whether the process *pid* runs (a zombie, ended but not reaped, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def group(pgid):
    """The processes of the process group *pgid* (read from all of /proc)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (OSError, psutil.Error):
            pass
    return found


def signal_group(pgid, sig):
    """Signal the process group *pgid*, whose leader (a child of ours) is not reaped yet: its
    pgid is no one else's until then."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class Group:
    """The process group of a child of ours that leads it (``pid``: its pgid), signalled as
    a psutil process is, for `Ending`. Its keeper forgets it (`Ending.forget`) before it
    reaps the leader: from then on that pgid may be any process's."""

    pid: int

    def send_signal(self, sig):
        signal_group(self.pid, sig)

    def kill(self):
        signal_group(self.pid, signal.SIGKILL)

    def is_running(self):
        """Not reaped yet (see the class): `alive` says whether it still runs."""
        return True


class Ending:
    """
    The one "end, then kill after a grace period": SIGTERM (or another signal, or none)
    now, SIGKILL once the grace passed, without waiting meanwhile (`finish` at each look),
    or waiting for it (`settle`). Each is a psutil snapshot, whose signals psutil sends
    only to the process it was (not to a new one that got its pid), or a `Group`.
    """

    def __init__(self):
        self.due = {}  # psutil process or Group: monotonic time of its SIGKILL

    def end(self, processes, grace, first=signal.SIGTERM):
        """Send *first* to *processes* now (None: nothing), SIGKILL after *grace* s; the
        grace of one asked before stays."""
        for process in processes:
            try:
                if first is not None:
                    process.send_signal(first)
                self.due.setdefault(process, time.monotonic() + grace)
            except psutil.Error:
                pass

    def forget(self, process):
        """Signal *process* no more (a `Group` whose leader is about to be reaped)."""
        self.due.pop(process, None)

    def finish(self, everything=False):
        """SIGKILL those whose grace passed (*everything*: all of them)."""
        now = time.monotonic()
        for process, due in list(self.due.items()):
            if everything or now >= due:
                del self.due[process]
                try:
                    process.kill()
                except psutil.Error:
                    pass

    def running(self):
        """Whether any of them still runs."""
        return any(alive(process.pid) and process.is_running() for process in self.due)

    def settle(self, reap, seconds):
        """Wait until none of them runs, SIGKILL each at its grace, at most *seconds* s;
        ``reap()`` at each look (the caller's children: reaped by the caller)."""
        deadline = time.monotonic() + seconds
        while True:
            reap()
            self.finish()
            if not self.running() or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        self.finish(everything=True)
        reap()


def become_subreaper():
    """Make this process the parent of the orphans its program leaves (Linux's child
    subreaper; elsewhere they go to init, as before)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def children():
    """The pids of this process's children (see `end_orphans`)."""
    return {process.pid for process in psutil.Process().children()}


def end_orphans(spare=(), grace=5.0):
    """End what the program left behind (see `become_subreaper`): this process's children
    but those in *spare* (pids it had before the program), and theirs; SIGTERM, then
    SIGKILL after *grace* s (`Ending`); reaped here, so that none holds a port when the
    program starts again."""
    orphans = [process for child in psutil.Process().children() if child.pid not in spare
               for process in tree(child.pid)]
    ending = Ending()
    ending.end(orphans, grace)
    ending.settle(lambda: _reap(orphans), 2 * grace)


def _reap(processes):
    """Reap those of *processes* that ended (our children; the others are only looked at)."""
    for process in processes:
        try:
            process.wait(timeout=0)
        except (psutil.TimeoutExpired, psutil.Error):
            pass
