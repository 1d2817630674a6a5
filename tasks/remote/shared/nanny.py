"""
Keep one program of the cluster alive, as Dask's nanny keeps a worker: start it again
when it dies.

``tasks/remote/steps/master/start_master.sh`` unpacks it (with ``process_tree.py``, what it
knows of processes, in the package ``ipp_remote``) into the run directory and runs it with
the cluster's Python in the controller's and Jupyter's screen sessions::

    python RUN_DIR/ipp_remote shared.nanny controller MARKER -- PYTHON RUN_DIR/ipp_remote master.controller ...
    python RUN_DIR/ipp_remote shared.nanny jupyter MARKER -- JUPYTER ARGS...
    python RUN_DIR/ipp_remote shared.nanny keeper MARKER -- PYTHON RUN_DIR/ipp_remote master.keeper RUN_DIR

(the last by ``steps/slurm/keeper.sh``, on the login node: the keeper of the Slurm jobs).

MARKER: the file to write when it gives up. The engines of a host are kept by one
supervisor (``supervisor.py``), which follows the same rules: `Restarts`, the one restart
policy of the project.

A program that ends with exit code 0 was shut down on purpose (a client asked the
controller to, a user shut Jupyter down); any other end is a crash, and the program
starts again at once, then after 1, 2, 4, ... s: at most `GIVE_UP_AFTER` times in `WINDOW`
s. The crash after those makes the nanny give up: it says so in its log and in *marker*,
and ends. The program exiting (not killed) within `FIRST_RUN` s of its first start (a port
taken, a broken setup) is given up at once: starting it again would not mend it. A stop
(SIGHUP from screen, SIGTERM from the stop's kill) ends the program and the nanny, also
during a wait. The controller starts again with ``--restore`` (see
``tasks/remote/master/controller.py``); Jupyter on the same port with the same token.

The nanny is its program's child subreaper: what the program started and left behind
when it ended (the controller's scheduler processes, which hold its ports; Jupyter's
kernels) becomes the nanny's, which ends it all before it starts the program again (see
``process_tree.end_orphans``).
"""

import signal
import subprocess
import sys
import time

from . import process_tree

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
GIVE_UP_AFTER, WINDOW = 5, 300.0
FIRST_RUN = 30.0  # seconds: the controller or Jupyter ending sooner at its first start is not mended
POLL = 0.1  # seconds between two looks for a stop during a wait
WATCH = 0.5  # seconds between two looks at a program: its end; an engine's memory
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: What the log calls each program, and how a user starts it again after a give-up.
NOUNS = {"controller": "the controller", "jupyter": "Jupyter", "keeper": "the keeper"}


def line(text):
    """*text* as a line of the nanny's in a log (``RESTART`` in screen_logs.py finds restarts)."""
    return f"=== nanny {time.strftime('%Y-%m-%d %H:%M:%S')}: {text}"


def note(text):
    """One line in the program's log (the screen session's), marked as the nanny's."""
    print(line(text), flush=True)


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


def describe(returncode):
    """How a process ended, from its return code: ``exit code 3``, ``signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {-returncode} ({signal.Signals(-returncode).name})"
    except ValueError:  # a real-time signal (SIGRTMIN+N) has no name of its own
        return f"signal {-returncode}"


class Restarts:
    """
    The restart policy of a program kept alive (the controller and Jupyter here, each
    engine in ``engine_life.py``): its crashes in the last `WINDOW` s; after each, a wait
    before the next start: none for the first *at_once* crashes, then `BACKOFF_FIRST`,
    doubled at each crash, at most `BACKOFF_MAX`; at the crash after `GIVE_UP_AFTER` in the
    window, none (given up). The controller and Jupyter start again at once the first time
    (clients and engines wait for them): *at_once* 1; an engine: 0.
    """

    def __init__(self, noun, at_once=0):
        self.noun, self.at_once = noun, at_once
        self.crashes = []  # monotonic times of the recent crashes

    def crashed(self, now):
        """Count a crash at *now* (monotonic time): the seconds to wait before the next
        start, or None to give up."""
        self.crashes = [t for t in self.crashes if now - t < WINDOW] + [now]
        if len(self.crashes) > GIVE_UP_AFTER:
            return None
        late = len(self.crashes) - self.at_once
        return 0.0 if late <= 0 else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (late - 1))

    def forget(self):
        """Start afresh: no crash counts."""
        self.crashes = []

    def restart_line(self, why, delay):
        """What the log says of a restart after an end *why*, in *delay* s."""
        return (f"restart: {self.noun} ended ({why}); starting it again "
                + (f"in {delay:g} s" if delay else "now"))

    def give_up_line(self, why):
        """What the log and the marker say of a give-up after an end *why*."""
        return (f"gave up: {self.noun} ended {len(self.crashes)} times in {WINDOW / 60:g} min,"
                f" the last time: {why}")


class Nanny:
    """Runs ``argv`` (the program and its arguments) under *options*, as the module says."""

    def __init__(self, options, argv):
        self.options, self.argv = options, argv
        self.role = options["role"]
        self.noun = NOUNS[self.role]
        self.stopping, self.child = False, None
        self.restarts = Restarts(self.noun, at_once=1)
        self.starts = 0

    def stop(self, signum, frame):
        """A stop of this project: end the program, and never start it again."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def start(self):
        argv = list(self.argv)
        if self.role == "controller" and self.starts:
            argv.append("--restore")  # the same ports, key and engines
        self.starts += 1
        self.others = process_tree.children()
        self.began = time.monotonic()
        self.child = subprocess.Popen(argv)

    def watch(self):
        """Wait for the program to end; why it ended."""
        while True:
            try:
                self.child.wait(timeout=WATCH)
                return describe(self.child.returncode)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping:  # also a program started as the stop came: it ends too
                self.child.terminate()

    def give_up(self, text):
        """Say *text* in the log and in the marker; the nanny's exit code."""
        note(f"{text}; fab cluster.up starts it again")
        with open(self.options["marker"], "w") as marker:
            marker.write(text + "\n")
        return 1

    def wait(self, seconds):
        """Sleep *seconds*, or less if a stop comes."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(max(0.0, min(POLL, deadline - time.monotonic())))  # the clock moved on

    def run(self):
        while not self.stopping:
            self.start()
            why = self.watch()
            process_tree.end_orphans(spare=self.others)
            if self.stopping or self.child.returncode == 0:
                return 0
            now = time.monotonic()
            delay = self.restarts.crashed(now)
            if (self.starts == 1 and self.child.returncode > 0
                    and now - self.began < FIRST_RUN):  # it exited: a signal would be a crash
                return self.give_up(f"gave up: {self.noun} ended at its first start, after"
                                    f" {now - self.began:.1f} s ({why}): not a crash to mend")
            if delay is None:
                return self.give_up(self.restarts.give_up_line(why))
            note(self.restarts.restart_line(why, delay))
            self.wait(delay)
        return 0


def options_of(argv):
    """The options and the program's argv, from the nanny's command line (see the module)."""
    role = argv[1] if len(argv) > 1 else ""
    if role in NOUNS and len(argv) > 4 and argv[3] == "--":
        return {"role": role, "marker": argv[2]}, argv[4:]
    raise SystemExit("usage: python RUN_DIR/ipp_remote shared.nanny controller|jupyter|keeper MARKER -- PROGRAM ARGS...")


def main(argv):
    options, program = options_of(argv)
    keeper = Nanny(options, program)
    process_tree.become_subreaper()
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, keeper.stop)
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
