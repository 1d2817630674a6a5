"""
The processes of a program that the nanny (``tasks/remote/shared/nanny.py``) or the engines'
supervisor (``supervisor.py``) keeps: the program and all it started, their resident
memory, and ending what the program left behind. All of it is read through psutil.

``start_engines.sh`` and ``start_master.sh`` unpack this file beside them in the run
directory, where they import it.
"""

import ctypes
import os
import time

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


class Leftovers:
    """
    What an engine left behind, to end without waiting for it (the supervisor's loop goes
    on meanwhile): SIGTERM now or none, SIGKILL once its grace passed. Each is a psutil
    snapshot, whose signals psutil sends only to the process it was (not to a new one
    that got its pid).
    """

    def __init__(self):
        self.due = {}  # psutil process: monotonic time of its SIGKILL

    def end(self, processes, grace, term=True):
        """SIGTERM *processes* now (unless not *term*), SIGKILL after *grace* s."""
        for process in processes:
            try:
                if term:
                    process.terminate()
                self.due.setdefault(process, time.monotonic() + grace)
            except psutil.Error:
                pass

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


def _reap(processes, grace):
    """Wait *grace* s for *processes* to end, then SIGKILL what is left, and reap it."""
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


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
    SIGKILL after *grace* s; reaped here, so that none holds a port when the program
    starts again."""
    orphans = [process for child in psutil.Process().children() if child.pid not in spare
               for process in tree(child.pid)]
    for process in orphans:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _reap(orphans, grace)
