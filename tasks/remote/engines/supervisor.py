"""
The engines of one cluster on one host, kept by one process: the supervisor.

``tasks/remote/steps/engines/start_engines.sh`` unpacks it (with the modules it imports, in
the package ``ipp_remote``) into the run directory and runs it, after the host's SETUP, in
the screen session ``NAME-engines``::

    python RUN_DIR/ipp_remote engines.supervisor RUN_DIR NAME LABEL COUNT RESTART LIMIT DEVICES -- IPENGINE ...

It starts engines 1 to COUNT (``engine_fork.py``: forked from its warm Python, or as
processes), in waves of one per core (at least 4) a second, so that neither the host nor
the controller is flooded. Engine N registers as ``LABEL/N/TIME/RANDOM`` (the controller
counts it under its host; it is given in a file of the user's, see ``engine_life.py``),
writes ``NAME-engine-N.log`` and, with DEVICES (GPU UUIDs or indexes, comma-separated),
sees one of them in ``CUDA_VISIBLE_DEVICES``, round-robin. Its restarts follow RESTART
(ENGINE_RESTART, see ``engine_life.py``); past LIMIT (MEMORY_LIMIT: bytes, ``auto`` or
empty) its process group is killed.

The supervisor only forks and reaps; one timer loop (``timers.py``) runs the rest: it acts
on ``NAME-engines.requests`` (``engine_requests.py``: renew one engine, start those stopped),
writes its state on every change and every `SAMPLE` s (``engine_state.py``), samples the
host (``host_sample.py``), watches the engines' memory (``memory_watch.py``) and, every
`RESCAN` s, what they started (``orphan_scan.py``), and keeps ``host_report.py`` running
beside it (where no host nanny does its work), which sends the state to the dashboard.

What an engine leaves when it ends goes too, before the engine is reaped (no pid that was
reaped is signalled: it may be another's now): its process group at once (SIGTERM), what
it started outside that group and its KernelNanny `GRACE` s later (SIGKILL: the KernelNanny
tells the hub first, and ends by itself; the host nanny, ``host_nanny.py``, is told at once),
and any other process left to the supervisor
(their subreaper). SIGHUP (screen's quit), SIGTERM and SIGINT stop it, and so does a
failure of its own: every engine ends (SIGTERM, SIGKILL after `GRACE` s: a busy engine
does not end on SIGTERM), then the host nanny (or each KernelNanny) gets `GRACE` s to
tell the hub, then all that is left ends.
"""

import os
import selectors
import signal
import sys
import time

from ..shared import nanny, process_tree
from . import engine_fork, host_report, host_sample
from .engine_life import Engine
from .engine_requests import Requests
from .engine_state import StateFile
from .memory_watch import MemoryWatch
from .orphan_scan import OrphanScan
from .timers import Timers

TICK = 0.25  # seconds between two looks at the engines, the requests and the pipes
SAMPLE = 5.0  # seconds between two samples of the host and the engines' memory
GRACE = 5.0  # seconds an engine and its leftovers get after SIGTERM, before SIGKILL
RESCAN = 10.0  # seconds between two reads of all /proc for the engines' descendants


class Supervisor:
    """Keeps the engines of *options* (see the module); *argv*: ipengine's command line.
    It forks and reaps them; the jobs of its timer loop (`timers`) do the rest."""

    def __init__(self, options, argv):
        self.options, self.argv = options, argv
        self.run_dir, self.name = options["run"], options["name"]
        self.limit = nanny.memory_limit(options["limit"], options["count"])
        self.engines = {n: Engine(n, self.path(f"-engine-{n}"))
                        for n in range(1, options["count"] + 1)}
        self.stopping = False
        self.ending = process_tree.Ending()  # the engines' process groups, asked to end
        self.leftovers = process_tree.Ending()  # what they left, and the orphans
        self.selector = selectors.DefaultSelector()
        self.state = StateFile(self.path("-engines"))
        self.requests = Requests(self.path("-engines.requests"))
        self.sampler = host_sample.Sampler(self.selector, self.changed)
        report = (self.state.json_path, host_report.engine_file(argv), options["label"])
        self.reporter = host_report.Reporter(*report)  # where no host nanny sends the report
        reason = engine_fork.warm_reason(argv[0])
        try:
            self.starter = engine_fork.Processes() if reason else engine_fork.Warm(report)
        except (ImportError, RuntimeError) as error:
            reason, self.starter = str(error), engine_fork.Processes()
        self.mode = "process" if reason else "fork"
        self.host = getattr(self.starter, "host", None)  # the host nanny's keeper, if any
        self.timers = Timers()
        self.timers.every(0, self.read_requests)
        helpers = (self.sampler.gpus, self.reporter, self.host or self.reporter)  # no engine's children
        self.timers.every(RESCAN, OrphanScan(self.engines, helpers, self.leftovers, GRACE).run)
        self.timers.every(nanny.WATCH if self.limit else SAMPLE,
                          MemoryWatch(self.engines, self.limit, self.end).run)
        self.timers.every(SAMPLE, self.sampler.run)
        self.timers.every(0, self.ending.finish)
        self.timers.every(0, self.leftovers.finish)
        self.timers.every(0, lambda: self.host and self.host.pid or self.reporter.keep())
        print(f"=== supervisor {os.getpid()}: {options['count']} engines, " + (
            "forked from this Python" if not reason else
            f"each a process of its own: {reason}"), flush=True)
        self.wave = max(4, os.cpu_count() or 1)
        self.in_waves(self.engines.values())

    def in_waves(self, engines):
        """Start *engines* from now on, `wave` a second."""
        now = time.monotonic()
        for index, engine in enumerate(engines):
            engine.state, engine.due = "waiting", now + index // self.wave

    def path(self, suffix):
        return os.path.join(self.run_dir, f"{self.name}{suffix}")

    def stop(self, signum, frame):
        self.stopping = True

    def changed(self):
        """Something the state file says changed: it is written at the next turn."""
        self.state.dirty = True

    # -- starts and ends ----------------------------------------------------------------
    def start(self, engine):
        if not engine.starts:
            engine.launched(self.name)
        env = dict(os.environ)
        devices = self.options["devices"]
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[(engine.number - 1) % len(devices)]
        engine.starts, engine.renewing, engine.tree = engine.starts + 1, False, []
        self.changed()
        try:
            argv = [*self.argv, f"--config={engine.write_session(self.options['label'])}"]
            engine.child = self.starter.start(engine.number, argv, env, engine.log_path)
        except OSError as error:  # no fork (the user's process limit), no log (a full disk)
            engine.forget_session()
            return self.decide(engine, 1, f"could not start ({error})")
        engine.state, engine.kernel_nanny = "running", None
        if engine.child.request is not None:
            self.selector.register(engine.child.request, selectors.EVENT_READ, engine)

    def end(self, engine, sig=signal.SIGTERM):
        """Signal *engine*'s process group; SIGKILL it after GRACE s if it is still there."""
        self.ending.end([process_tree.Group(engine.child.pid)], GRACE, sig)

    def ended(self, engine):
        """*engine*'s process ended, and is not reaped yet: while it is a zombie, its pid
        (the pgid of its group) is no one else's. Its group and what escaped it end (psutil
        snapshots, which signal only the process they were)."""
        child, engine.child = engine.child, None
        self.ending.forget(process_tree.Group(child.pid))  # reaped next: signalled no more
        if child.request is not None:
            self.selector.unregister(child.request)
        child.close()
        if self.host:
            self.host.ended(child.pid)
        group = process_tree.group(child.pid)
        self.leftovers.end(group, GRACE)
        escaped = [p for p in engine.tree[1:] if p not in group]  # a new session's, a KernelNanny
        if engine.kernel_nanny:
            escaped += process_tree.alone(engine.kernel_nanny)
        self.leftovers.end(escaped, GRACE, None)
        engine.forget_session()

    def decide(self, engine, code, why):
        """After an end with exit *code* (*why*, if known): *engine* starts again, or not."""
        engine.after_end(code, why, self.options["restart"], self.stopping)
        self.changed()

    # -- what the loop looks at ---------------------------------------------------------
    def reap(self):
        """Reap every child that ended, and forget its pid: from then on the kernel may
        give that pid to any process, of any user. An engine is reaped only once what it
        left is ended (`ended`): `os.waitid` with WNOWAIT says which child ended, and
        leaves it a zombie until then."""
        engines = {e.child.pid: e for e in self.engines.values() if e.child}
        kernel_nannies = {e.kernel_nanny: e for e in self.engines.values() if e.kernel_nanny}
        while True:
            try:
                done = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if done is None:
                return
            engine = engines.pop(done.si_pid, None)
            if engine:
                self.ended(engine)
            _, status = os.waitpid(done.si_pid, 0)
            if engine:
                self.decide(engine, os.waitstatus_to_exitcode(status), "")
            elif self.host and (lost := self.host.reaped(done.si_pid, os.waitstatus_to_exitcode(status),
                                                          time.monotonic())) is not None:
                self.renew([e for e in self.engines.values() if e.child and e.child.pid in lost])
            elif done.si_pid in kernel_nannies:
                kernel_nannies.pop(done.si_pid).kernel_nanny = None
            elif done.si_pid == self.sampler.gpus.pid:
                self.sampler.gpus.ended()
            elif done.si_pid == self.reporter.pid:
                self.reporter.ended()

    def read_requests(self):
        """Act on the lines ``NAME-engines.requests`` gained since the last read."""
        for request, number in self.requests.read():
            if request == "start":
                again = [e for e in self.engines.values() if e.state in ("stopped", "gaveup")]
                for engine in again:
                    engine.forget_giving_up()
                self.in_waves(again)
                self.changed()
            else:  # renew
                self.renew([self.engines[number]] if number in self.engines else [])

    def renew(self, engines):
        """End the running ones of *engines*, to start them again at once."""
        for engine in engines:
            if engine.child:
                engine.renewing = True
                self.end(engine)

    def write_state(self):
        self.state.write({"pid": os.getpid(), "mode": self.mode, "time": time.time(),
                          "host": self.sampler.host,
                          "engines": {str(n): e.facts(self.limit) for n, e in self.engines.items()}})

    def serve(self, timeout):
        """Wait up to *timeout* s for an engine that asks for its KernelNanny, or for
        nvidia-smi's answer; serve them."""
        for key, _ in self.selector.select(timeout):
            if key.data is self.sampler:
                self.sampler.read()
            else:
                engine = key.data
                self.selector.unregister(key.fd)
                engine.kernel_nanny = self.starter.serve(engine.child, engine.log_path)

    def run(self):
        try:
            while not self.stopping:
                self.tick()
        finally:
            self.shut_down()
        return 0

    def tick(self):
        now = time.monotonic()
        for engine in self.engines.values():
            if engine.state == "waiting" and now >= engine.due:
                self.start(engine)
        if self.state.dirty:
            self.write_state()
        self.serve(TICK)
        self.reap()
        self.timers.run(time.monotonic())

    def shut_down(self):
        """End every engine (SIGTERM to its process group; SIGKILL after GRACE s), then
        give their KernelNannies GRACE s to tell the hub (they end by themselves once their
        engine has), then end everything left; reap all."""
        self.stopping = True
        running = [e for e in self.engines.values() if e.child]
        for engine in running:
            self.end(engine)
        self.wait(lambda: any(e.child for e in running), 2 * GRACE, self.ending.finish)
        if self.host:  # it told the hub of every engine's end, and ends
            self.host.stop()
            self.wait(lambda: self.host.pid)
        self.wait(self.leftovers.running)
        self.leftovers.finish(everything=True)
        for pid in process_tree.children():  # the KernelNannies that did not end, the GPU query, the report
            self.leftovers.end(process_tree.alone(pid), 0.0, None)
        self.leftovers.finish(everything=True)
        self.wait(lambda: process_tree.children())

    def wait(self, busy, seconds=GRACE, then=lambda: None):
        """Reap until ``busy()`` is false, at most *seconds*; ``then()`` after each reap."""
        deadline = time.monotonic() + seconds
        while busy() and time.monotonic() < deadline:
            self.reap()
            then()
            time.sleep(0.05)
        self.reap()


def options_of(argv):
    """The options and ipengine's argv, from the supervisor's command line (see the module)."""
    if len(argv) < 10 or argv[8] != "--" or not argv[4].isdigit():
        raise SystemExit("usage: python RUN_DIR/ipp_remote engines.supervisor RUN_DIR NAME LABEL COUNT RESTART LIMIT DEVICES"
                         " -- IPENGINE ARGS...")
    run, name, label, count, restart, limit, devices = argv[1:8]
    return ({"run": run, "name": name, "label": label, "count": int(count),
             "restart": restart == "yes", "limit": limit,
             "devices": [d for d in devices.split(",") if d]}, argv[9:])


def main(argv):
    options, program = options_of(argv)
    process_tree.become_subreaper()  # what an engine leaves behind is ours to end
    supervisor = Supervisor(options, program)
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
