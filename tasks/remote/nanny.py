"""
Keep one engine alive, as Dask's nanny keeps a worker: start it again when it dies,
and end it when it passes its memory limit.

``tasks/remote/start_engines.sh`` writes this file into the run directory and runs it
with the cluster's Python in each engine's screen session::

    python nanny.py LABEL NUMBER RESTART LIMIT ENGINES MARKER -- IPENGINE ARGS...

LABEL and NUMBER: each start registers as ``--Session.session=LABEL/NUMBER/TIME``, so
that the controller counts it under its host; RESTART: ENGINE_RESTART (yes or no);
LIMIT: MEMORY_LIMIT in bytes, ``auto`` or empty; ENGINES: how many engines the host
runs (for ``auto``); MARKER: the file to write when it gives up.

An engine that ends with exit code 0 was shut down on purpose (the controller asked
it to); any other end is a crash, and the engine starts again after 1, 2, 4, ... at
most 60 s: at most `GIVE_UP_AFTER` times in `WINDOW` s. The crash after those makes
the nanny give up: it says so in its log and in *marker*, and ends. A stop (SIGHUP from screen,
SIGTERM from the stop's kill) ends the engine and the nanny, also during a wait.
"""

import os
import signal
import subprocess
import sys
import time

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
GIVE_UP_AFTER, WINDOW = 5, 300.0
POLL = 0.1
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


def _children():
    """``{pid: [child pids]}`` of every process, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    return children


def resident(pid):
    """Resident memory in bytes of *pid* and all its descendants (0 once they are gone)."""
    children, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


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
        self.stopping, self.child = False, None
        self.crashes = []  # monotonic times of the recent crashes

    def stop(self, signum, frame):
        """A stop of this project: end the engine, and never start it again."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def start(self):
        label, number = self.options["label"], self.options["number"]
        session = f"--Session.session={label}/{number}/{time.time_ns()}"
        self.child = subprocess.Popen([*self.argv, session])

    def watch(self):
        """Wait for the engine to end, ending it past the memory limit; why it ended."""
        while self.child.poll() is None:
            if self.limit and not self.stopping:
                used = resident(self.child.pid)
                if used > self.limit:
                    say(f"the engine uses {size(used)}, {size(used - self.limit)} over "
                        f"MEMORY_LIMIT ({size(self.limit)}): ending it")
                    self.child.kill()
                    self.child.wait()
                    return f"passed MEMORY_LIMIT ({size(self.limit)}) by {size(used - self.limit)}"
            time.sleep(POLL)
        return describe(self.child.returncode)

    def wait(self, seconds):
        """Sleep *seconds*, or less if a stop comes."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(POLL, deadline - time.monotonic()))

    def run(self):
        while not self.stopping:
            self.start()
            why = self.watch()
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
    if len(argv) < 9 or argv[7] != "--":
        raise SystemExit("usage: nanny.py LABEL NUMBER RESTART LIMIT ENGINES MARKER -- IPENGINE ARGS...")
    label, number, restart, limit, engines, marker = argv[1:7]
    options = {"label": label, "number": number, "restart": restart == "yes", "limit": limit,
               "engines": int(engines), "marker": marker}
    keeper = Nanny(options, argv[8:])
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, keeper.stop)
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
