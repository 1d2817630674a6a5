"""
Keep one engine alive, as Dask's nanny keeps a worker: start it again when it dies,
and end it when it passes its memory limit.

``tasks/remote/start_engines.sh`` writes this file into the run directory and runs it
with the cluster's Python in each engine's screen session::

    python nanny.py LABEL NUMBER RESTART LIMIT ENGINES MARKER DELAY -- IPENGINE ARGS...

LABEL and NUMBER: each start registers as ``--Session.session=LABEL/NUMBER/TIME``, so
that the controller counts it under its host; RESTART: ENGINE_RESTART (yes or no);
LIMIT: MEMORY_LIMIT in bytes, ``auto`` or empty; ENGINES: how many engines the host
runs (for ``auto``); MARKER: the file to write when it gives up; DELAY: seconds to wait
before the first start (the host starts its engines in waves, so that the controller
is not flooded with registrations).

An engine that ends with exit code 0 was shut down on purpose (the controller asked
it to); any other end is a crash, and the engine starts again after 1, 2, 4, ... at
most 60 s: at most `GIVE_UP_AFTER` times in `WINDOW` s. The crash after those makes
the nanny give up: it says so in its log and in *marker*, and ends. A stop (SIGHUP from screen,
SIGTERM from the stop's kill) ends the engine and the nanny, also during a wait.

SIGUSR1 asks for a new start at once, neither a crash nor a stop: fab sends it when the
controller dropped the engine's registration (``tasks/remote/renew_engines.sh``), which
leaves an engine that runs but that the controller does not know.

The nanny looks at its engine every `WATCH` s: whether it ended and, with a memory limit,
the resident memory of the engine's own process tree (the engine and what it started,
read from all of /proc every `RESCAN` s only): it costs next to nothing beside the engine.
"""

import os
import signal
import subprocess
import sys
import time

import psutil

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
GIVE_UP_AFTER, WINDOW = 5, 300.0
POLL = 0.1  # seconds between two looks for a stop during a wait
WATCH = 0.5  # seconds between two looks at the engine: its end, its memory, a renewal
RESCAN = 10.0  # seconds between two reads of all /proc for the engine's descendants
PAGE = os.sysconf("SC_PAGE_SIZE")
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def say(text):
    """One line in the engine's log (the screen session's), marked as the nanny's."""
    print(f"=== nanny {time.strftime('%Y-%m-%d %H:%M:%S')}: {text}", flush=True)


def size(count):
    """*count* bytes as a short text: ``1.5 GiB``, ``300 MiB``."""
    for unit in ("T", "G", "M", "K"):
        if count >= UNITS[unit]:
            return f"{count / UNITS[unit]:.3g} {unit}iB"
    return f"{count} B"


def memory_limit(limit, engines, meminfo="/proc/meminfo"):
    """The limit in bytes: *limit* as given, or for ``auto`` the host's memory divided by
    its *engines*; None for no limit."""
    if not limit:
        return None
    if limit != "auto":
        return int(limit)
    with open(meminfo) as lines:
        total_kb = next(int(line.split()[1]) for line in lines if line.startswith("MemTotal:"))
    return total_kb * 1024 // max(1, engines)


def descendants(pid):
    """*pid* and all its descendants, from the parent pids of all of /proc (as psutil's
    ``children()`` does; kernels without /proc/PID/task/TID/children have no cheaper
    way): the nanny does it every `RESCAN` s only."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):  # ended meanwhile
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def resident(pids):
    """Resident memory in bytes of the processes *pids* (0 for those that are gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def _tree(pid):
    """The process *pid* and all its descendants, as psutil processes ([] once gone)."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def end_tree(child, grace=5.0, kill=False):
    """
    End the engine *child* (a Popen): SIGTERM, or SIGKILL at once with *kill*; then what
    it started, ipyparallel's own nanny first, which tells the controller that its engine
    is gone and ends by itself. What is left after *grace* s gets SIGKILL: that nanny
    outlives its engine otherwise, and so would a task's own processes.
    """
    tree = _tree(child.pid)
    child.kill() if kill else child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    _, alive = psutil.wait_procs(tree[1:], timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


def describe(returncode):
    """How a process ended, from its return code: ``exit code 3``, ``signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {-returncode} ({signal.Signals(-returncode).name})"
    except ValueError:  # a real-time signal (SIGRTMIN+N) has no name of its own
        return f"signal {-returncode}"


class Nanny:
    """Runs ``argv`` (ipengine and its arguments) under *options*, as the module says."""

    def __init__(self, options, argv):
        self.options, self.argv = options, argv
        self.limit = memory_limit(options.get("limit"), options.get("engines", 1))
        self.stopping, self.renewing, self.child = False, False, None
        self.crashes = []  # monotonic times of the recent crashes

    def stop(self, signum, frame):
        """A stop of this project: end the engine, and never start it again."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def renew(self, signum, frame):
        """fab asks for a new start (the controller dropped the registration): see `watch`."""
        self.renewing = True

    def start(self):
        label, number = self.options["label"], self.options["number"]
        session = f"--Session.session={label}/{number}/{time.time_ns()}"
        self.renewing = False  # a renewal asked for during a back-off: this start is it
        self.child = subprocess.Popen([*self.argv, session])

    def watch(self):
        """Wait for the engine to end, ending it past the memory limit or for a renewal;
        why it ended."""
        tree, scanned = [self.child.pid], time.monotonic()
        while True:
            try:
                self.child.wait(timeout=WATCH)
                return describe(self.child.returncode)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping:
                continue
            if self.renewing:
                end_tree(self.child)
                return "renewal"
            if not self.limit:
                continue
            if time.monotonic() - scanned >= RESCAN:
                tree, scanned = descendants(self.child.pid), time.monotonic()
            used = resident(tree)
            if used > self.limit:
                say(f"the engine uses {size(used)}, {size(used - self.limit)} over "
                    f"MEMORY_LIMIT ({size(self.limit)}): ending it")
                end_tree(self.child, kill=True)
                return f"passed MEMORY_LIMIT ({size(self.limit)}) by {size(used - self.limit)}"

    def wait(self, seconds):
        """Sleep *seconds*, or less if a stop comes."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(max(0.0, min(POLL, deadline - time.monotonic())))  # the clock moved on

    def run(self):
        self.wait(self.options.get("delay", 0))
        while not self.stopping:
            self.start()
            why = self.watch()
            if self.renewing and not self.stopping:
                self.renewing = False
                say("renewal: the controller dropped this engine's registration; "
                    "starting it again now")
                continue
            if self.stopping or self.child.returncode == 0:
                return 0
            if not self.options.get("restart", True):
                say(f"the engine ended ({why}); ENGINE_RESTART=no: it stays stopped")
                return 1
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < WINDOW] + [now]
            if len(self.crashes) > GIVE_UP_AFTER:
                line = (f"gave up: the engine ended {len(self.crashes)} times in "
                        f"{WINDOW / 60:g} min, the last time: {why}")
                say(line + "; fab engines.restart starts it again")
                with open(self.options["marker"], "w") as marker:
                    marker.write(line + "\n")
                return 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (len(self.crashes) - 1))
            say(f"restart: the engine ended ({why}); starting it again in {delay:g} s")
            self.wait(delay)
        return 0


def main(argv):
    if len(argv) < 10 or argv[8] != "--":
        raise SystemExit("usage: nanny.py LABEL NUMBER RESTART LIMIT ENGINES MARKER DELAY"
                         " -- IPENGINE ARGS...")
    label, number, restart, limit, engines, marker, delay = argv[1:8]
    options = {"label": label, "number": number, "restart": restart == "yes", "limit": limit,
               "engines": int(engines), "marker": marker, "delay": float(delay)}
    keeper = Nanny(options, argv[9:])
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, keeper.stop)
    signal.signal(signal.SIGUSR1, keeper.renew)
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
