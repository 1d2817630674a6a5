"""
The engines of one cluster on one host, kept by one process: the supervisor.

``tasks/remote/steps/engines/start_engines.sh`` unpacks it (with ``engine_fork.py``, ``engine_life.py``,
``host_sample.py``, ``nanny.py`` and ``process_tree.py``) into the run directory and runs
it, after the host's SETUP, in the screen session ``NAME-engines``::

    python supervisor.py RUN_DIR NAME LABEL COUNT RESTART LIMIT DEVICES -- IPENGINE ARGS...

It starts engines 1 to COUNT (``engine_fork.py``: forked from its warm Python, or as
processes), in waves of one per core (at least 4) a second, so that neither the host nor
the controller is flooded. Engine N registers as ``LABEL/N/TIME/RANDOM`` (the controller
counts it under its host; it is given in a file of the user's, see ``engine_life.py``),
writes ``NAME-engine-N.log`` and, with DEVICES (GPU UUIDs or indexes, comma-separated),
sees one of them in ``CUDA_VISIBLE_DEVICES``, round-robin. Its restarts follow RESTART
(ENGINE_RESTART, see ``engine_life.py``); past LIMIT (MEMORY_LIMIT: bytes, ``auto`` or
empty) its process group is killed.

It reads ``NAME-engines.requests`` as it grows: ``renew N`` starts engine N again at once
(the controller dropped its registration), ``start`` starts the engines that are stopped
or gave up. It writes ``NAME-engines.json`` (its pid, how engines start, each engine's
pid, state, starts and memory, and the host's `host_sample.sample`) on every change and
every `SAMPLE` s, for ``cluster.status``, and keeps ``host_report.py`` running beside it,
which sends that file to the controller for the dashboard.

What an engine leaves when it ends goes too, before the engine is reaped (no pid that was
reaped is signalled: it may be another's now): its process group at once (SIGTERM), what
it started outside that group and its KernelNanny `GRACE` s later (SIGKILL: the nanny
tells the hub first, and ends by itself), and any other process left to the supervisor
(their subreaper). SIGHUP (screen's quit), SIGTERM and SIGINT stop it, and so does a
failure of its own: every engine ends (SIGTERM, SIGKILL after `GRACE` s: a busy engine
does not end on SIGTERM), then each KernelNanny gets `GRACE` s to tell the hub, then all
that is left ends.
"""

import json
import os
import selectors
import signal
import sys
import time

from ..shared import nanny, process_tree
from . import engine_fork, host_report, host_sample
from .engine_life import Engine

TICK = 0.25  # seconds between two looks at the engines, the requests and the pipes
SAMPLE = 5.0  # seconds between two samples of the host and the engines' memory
GRACE = 5.0  # seconds an engine and its leftovers get after SIGTERM, before SIGKILL
RESCAN = 10.0  # seconds between two reads of all /proc for the engines' descendants


class Supervisor:
    """Keeps the engines of *options* (see the module); *argv*: ipengine's command line."""

    def __init__(self, options, argv):
        self.options, self.argv = options, argv
        self.run_dir, self.name = options["run"], options["name"]
        self.limit = nanny.memory_limit(options["limit"], options["count"])
        self.engines = {n: Engine(n, self.path(f"-engine-{n}"))
                        for n in range(1, options["count"] + 1)}
        self.stopping, self.dirty = False, True
        self.requests_at, self.sampled, self.scanned, self.watched = 0, 0.0, 0.0, 0.0
        self.leftovers, self.gpus, self.host = process_tree.Leftovers(), host_sample.GpuQuery(), {}
        self.reporter = host_report.Reporter(self.path("-engines.json"), host_report.engine_file(argv),
                                             options["label"])
        self.selector = selectors.DefaultSelector()
        reason = engine_fork.warm_reason(argv[0])
        try:
            self.starter = engine_fork.Processes() if reason else engine_fork.Warm()
        except (ImportError, RuntimeError) as error:
            reason, self.starter = str(error), engine_fork.Processes()
        self.mode = "process" if reason else "fork"
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

    # -- starts and ends ----------------------------------------------------------------
    def start(self, engine):
        if not engine.starts:
            engine.launched(self.name)
        env = dict(os.environ)
        devices = self.options["devices"]
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[(engine.number - 1) % len(devices)]
        engine.starts, engine.renewing, engine.kill_at, engine.tree = engine.starts + 1, False, None, []
        self.dirty = True
        try:
            argv = [*self.argv, f"--config={engine.write_session(self.options['label'])}"]
            engine.child = self.starter.start(engine.number, argv, env, engine.log_path)
        except OSError as error:  # no fork (the user's process limit), no log (a full disk)
            engine.forget_session()
            return self.decide(engine, 1, f"could not start ({error})")
        engine.state, engine.nanny = "running", None
        if engine.child.request is not None:
            self.selector.register(engine.child.request, selectors.EVENT_READ, engine)

    def end(self, engine, sig=signal.SIGTERM):
        """Signal *engine*'s process group; SIGKILL it after GRACE s if it is still there."""
        self.signal_group(engine.child.pid, sig)
        engine.kill_at = engine.kill_at or time.monotonic() + GRACE

    @staticmethod
    def signal_group(pgid, sig):
        """Signal a group whose leader has not been reaped (its pgid is no one else's)."""
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def ended(self, engine):
        """*engine*'s process ended, and is not reaped yet: while it is a zombie, its pid
        (the pgid of its group) is no one else's. Its group and what escaped it end (psutil
        snapshots, which signal only the process they were)."""
        child, engine.child = engine.child, None
        if child.request is not None:
            self.selector.unregister(child.request)
        child.close()
        group = process_tree.group(child.pid)
        self.leftovers.end(group, GRACE)
        escaped = [p for p in engine.tree[1:] if p not in group]  # a new session's, a nanny
        if engine.nanny:
            escaped += process_tree.alone(engine.nanny)
        self.leftovers.end(escaped, GRACE, term=False)
        engine.forget_session()

    def decide(self, engine, code, why):
        """After an end with exit *code* (*why*, if known): *engine* starts again, or not."""
        engine.after_end(code, why, self.options["restart"], self.stopping)
        self.dirty = True

    # -- what the loop looks at ---------------------------------------------------------
    def reap(self):
        """Reap every child that ended, and forget its pid: from then on the kernel may
        give that pid to any process, of any user. An engine is reaped only once what it
        left is ended (`ended`): `os.waitid` with WNOWAIT says which child ended, and
        leaves it a zombie until then."""
        engines = {e.child.pid: e for e in self.engines.values() if e.child}
        nannies = {e.nanny: e for e in self.engines.values() if e.nanny}
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
            elif done.si_pid in nannies:
                nannies.pop(done.si_pid).nanny = None
            elif done.si_pid == self.gpus.pid:
                self.gpus.ended()
            elif done.si_pid == self.reporter.pid:
                self.reporter.ended()

    def read_requests(self):
        """Act on the lines ``NAME-engines.requests`` gained since the last read."""
        try:
            with open(self.path("-engines.requests"), "rb") as requests:
                requests.seek(self.requests_at)
                text = requests.read()
        except OSError:
            return
        text = text[:text.rfind(b"\n") + 1]  # a line still being written waits
        self.requests_at += len(text)
        for words in (line.split() for line in text.decode(errors="replace").splitlines()):
            if words[:1] == ["start"]:
                again = [e for e in self.engines.values() if e.state in ("stopped", "gaveup")]
                for engine in again:
                    engine.crashes = []
                    engine.forget_giving_up()
                self.in_waves(again)
                self.dirty = True
            elif words[:1] == ["renew"] and words[1:] and words[1].isdigit():
                engine = self.engines.get(int(words[1]))
                if engine and engine.child:
                    engine.renewing = True
                    self.end(engine)

    def watch(self, now):
        """The engines' memory (past LIMIT: killed), asked to end but not ended (SIGKILL),
        and, at each RESCAN, their descendants and the orphans left to the supervisor."""
        if now - self.scanned >= RESCAN:
            for engine in self.engines.values():
                engine.tree = process_tree.tree(engine.child.pid) if engine.child else []
            known = {pid for e in self.engines.values() for pid in (e.child and e.child.pid, e.nanny)}
            orphans = process_tree.children() - known - {self.gpus.pid, self.reporter.pid}
            self.leftovers.end([p for pid in orphans for p in process_tree.alone(pid)], GRACE)
            self.scanned = now
        for engine in self.engines.values():
            if not engine.child:
                continue
            if engine.kill_at and now >= engine.kill_at:
                self.signal_group(engine.child.pid, signal.SIGKILL)
            if not engine.tree:  # started since the last scan: the engine alone until the next
                engine.tree = process_tree.alone(engine.child.pid)
            engine.rss = process_tree.resident(engine.tree)
            if self.limit and engine.rss > self.limit and not engine.why:
                over = nanny.size(engine.rss - self.limit)
                engine.say(f"the engine uses {nanny.size(engine.rss)}, {over} over "
                           f"MEMORY_LIMIT ({nanny.size(self.limit)}): ending it")
                engine.why = f"passed MEMORY_LIMIT ({nanny.size(self.limit)}) by {over}"
                self.end(engine, signal.SIGKILL)

    def write_state(self):
        state = {"pid": os.getpid(), "mode": self.mode, "time": time.time(), "host": self.host,
                 "engines": {str(n): e.facts(self.limit) for n, e in self.engines.items()}}
        partial = self.path(".json.partial")
        try:
            with open(partial, "w") as out:
                json.dump(state, out)
            os.replace(partial, self.path("-engines.json"))
            self.dirty = False
        except OSError:  # a full disk: the next change or sample tries again
            pass

    def serve(self, timeout):
        """Wait up to *timeout* s for an engine that asks for its KernelNanny, or for
        nvidia-smi's answer; serve them."""
        for key, _ in self.selector.select(timeout):
            if key.data is self.gpus:
                self.gpus.read()
                if self.gpus.fd is None:
                    self.selector.unregister(key.fd)
            else:
                engine = key.data
                self.selector.unregister(key.fd)
                engine.nanny = self.starter.serve(engine.child, engine.log_path)

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
        if self.dirty:
            self.write_state()
        self.serve(TICK)
        self.reap()
        self.read_requests()
        now = time.monotonic()
        if self.limit and now - self.watched >= nanny.WATCH or now - self.sampled >= SAMPLE \
                or any(e.kill_at for e in self.engines.values()):
            self.watch(now)
            self.watched = now
        if now - self.sampled >= SAMPLE:
            self.host, self.sampled, self.dirty = host_sample.sample(self.gpus.gpus), now, True
            self.gpus.overdue()
            if self.gpus.fd is None:
                self.gpus.start()
                if self.gpus.fd is not None:
                    self.selector.register(self.gpus.fd, selectors.EVENT_READ, self.gpus)
        self.leftovers.finish()
        self.reporter.keep()

    def shut_down(self):
        """End every engine (SIGTERM to its process group; SIGKILL after GRACE s), then
        give their KernelNannies GRACE s to tell the hub (they end by themselves once their
        engine has), then end everything left; reap all."""
        self.stopping = True
        running = [e for e in self.engines.values() if e.child]
        for engine in running:
            self.signal_group(engine.child.pid, signal.SIGTERM)
        self.wait(lambda: any(e.child for e in running))
        for engine in running:
            if engine.child:
                self.signal_group(engine.child.pid, signal.SIGKILL)
        self.wait(lambda: any(e.child for e in running))
        self.wait(self.leftovers.running)
        self.leftovers.finish(everything=True)
        for pid in process_tree.children():  # the nannies that did not end, the GPU query, the report
            self.leftovers.end(process_tree.alone(pid), 0.0, term=False)
        self.leftovers.finish(everything=True)
        self.wait(lambda: process_tree.children())

    def wait(self, busy):
        """Reap until ``busy()`` is false, at most GRACE s."""
        deadline = time.monotonic() + GRACE
        while busy() and time.monotonic() < deadline:
            self.reap()
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
