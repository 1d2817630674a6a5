"""
The engines of one cluster on one host, kept by one process: the supervisor.

``tasks/remote/start_engines.sh`` unpacks it (with ``engine_fork.py``, ``host_sample.py``,
``nanny.py`` and ``process_tree.py``) into the run directory and runs it, after the
host's SETUP, in the screen session ``NAME-engines``::

    python supervisor.py RUN_DIR NAME LABEL COUNT RESTART LIMIT DEVICES -- IPENGINE ARGS...

It starts engines 1 to COUNT (see ``engine_fork.py`` for how: forked from its warm
Python, or as processes), in waves of one per core (at least 4) a second, so that neither
the host nor the controller is flooded. Engine N registers as
``--Session.session=LABEL/N/TIME`` (the controller counts it under its host), writes
``NAME-engine-N.log`` and, with DEVICES (GPU UUIDs or indexes, comma-separated), sees one
of them in ``CUDA_VISIBLE_DEVICES``, round-robin. It keeps each engine as the nanny kept
one (``nanny.py``): an engine that ends with exit code 0 was shut down on purpose and stays
so; any other end is a crash, and it starts again after 1, 2, 4, ... at most 60 s (with
RESTART=yes), at most ``GIVE_UP_AFTER`` times in ``WINDOW`` s, then gives up (its log and
``NAME-engine-N.gaveup`` say why); past LIMIT (MEMORY_LIMIT: bytes, ``auto`` or empty), its
process group is killed. A start and each restart are lines in the engine's log (the
launch line and the nanny's, which ``host_status.sh`` counts).

It reads ``NAME-engines.requests`` as it grows: ``renew N`` starts engine N again at once
(the controller dropped its registration), ``start`` starts the engines that are stopped
or gave up. It writes ``NAME-engines.json`` (its pid, how engines start, each engine's
pid, state, starts and memory, and the host's `host_sample.sample`) on every change and
every `SAMPLE` s, for ``cluster.status`` and the dashboard. SIGHUP (screen's quit),
SIGTERM and SIGINT stop it: every engine, its KernelNanny and what they started end.
"""

import json
import os
import select
import signal
import sys
import time

if __package__:  # imported as tasks.remote.supervisor, by the tests
    from . import engine_fork, host_sample, nanny, process_tree
else:  # run from the run directory, where the others lie beside it
    import engine_fork
    import host_sample
    import nanny
    import process_tree

TICK = 0.25  # seconds between two looks at the engines, the requests and the pipes
SAMPLE = 5.0  # seconds between two samples of the host and the engines' memory
GRACE = 5.0  # seconds an engine and its leftovers get after SIGTERM, before SIGKILL
RESCAN = 10.0  # seconds between two reads of all /proc for the engines' descendants


class Engine:
    """One engine's life under the supervisor."""

    def __init__(self, number):
        self.number, self.child, self.nanny = number, None, None
        self.state = "waiting"  # waiting, running, stopped, gaveup
        self.due = 0.0          # monotonic time of the next start, while waiting
        self.starts, self.crashes, self.renewing, self.why = 0, [], False, ""
        self.rss, self.tree = 0, []

    def facts(self, limit):
        return {"pid": self.child.pid if self.child else None, "state": self.state,
                "starts": self.starts, "rss": self.rss, "limit": limit,
                **({"why": self.why} if self.why else {})}


class Supervisor:
    """Keeps the engines of *options* (see the module); *argv*: ipengine's command line."""

    def __init__(self, options, argv):
        self.options, self.argv = options, argv
        self.run_dir, self.name = options["run"], options["name"]
        self.limit = nanny.memory_limit(options["limit"], options["count"])
        self.engines = {n: Engine(n) for n in range(1, options["count"] + 1)}
        self.stopping, self.dirty, self.pending = False, True, {}  # pending: pgid -> deadline
        self.requests_at, self.sampled, self.scanned = 0, 0.0, 0.0
        self.host = {}
        reason = engine_fork.warm_reason(argv[0])
        try:
            self.starter = engine_fork.Processes() if reason else engine_fork.Warm()
        except (ImportError, RuntimeError) as error:
            reason, self.starter = str(error), engine_fork.Processes()
        self.mode = "process" if reason else "fork"
        print(f"=== supervisor {os.getpid()}: {options['count']} engines, " + (
            "forked from this Python" if not reason else
            f"each a process of its own: {reason}"), flush=True)
        wave = max(4, os.cpu_count() or 1)
        now = time.monotonic()
        for index, engine in enumerate(self.engines.values()):
            engine.due = now + index // wave

    def path(self, suffix):
        return os.path.join(self.run_dir, f"{self.name}{suffix}")

    def say(self, engine, text):
        """A line of the supervisor in *engine*'s log, as the nanny wrote them."""
        with open(self.path(f"-engine-{engine.number}.log"), "a") as log:
            log.write(nanny.line(text) + "\n")

    def stop(self, signum, frame):
        self.stopping = True

    # -- starts and ends ----------------------------------------------------------------
    def start(self, engine):
        if not engine.starts:  # the launch line, as lib.sh's launch_header writes it
            with open(self.path(f"-engine-{engine.number}.log"), "a") as log:
                log.write(f"\n=== {time.strftime('%a %b %e %H:%M:%S %Z %Y')}:"
                          f" {self.name}-engine-{engine.number}\n")
        env = dict(os.environ)
        devices = self.options["devices"]
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[(engine.number - 1) % len(devices)]
        argv = [*self.argv, f"--Session.session={self.options['label']}/{engine.number}"
                            f"/{time.time_ns()}"]
        engine.child = self.starter.start(engine.number, argv, env,
                                          self.path(f"-engine-{engine.number}.log"))
        engine.state, engine.starts, engine.renewing, engine.why = "running", engine.starts + 1, False, ""
        engine.began, engine.nanny, engine.tree = time.monotonic(), None, []
        self.dirty = True

    def end(self, engine, sig=signal.SIGTERM):
        """Signal *engine*'s process group; what is left of it gets SIGKILL after GRACE s."""
        self.signal_group(engine.child.pid, sig)
        self.pending[engine.child.pid] = time.monotonic() + GRACE

    @staticmethod
    def signal_group(pgid, sig):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def ended(self, engine, status):
        """*engine*'s process ended with wait *status*: start it again, or not."""
        child, engine.child, now = engine.child, None, time.monotonic()
        child.close()
        self.signal_group(child.pid, signal.SIGTERM)  # what the engine left behind
        self.pending[child.pid] = now + GRACE
        if engine.nanny:
            self.pending[engine.nanny] = now + GRACE  # it tells the hub, then ends by itself
        code = os.waitstatus_to_exitcode(status)
        why = engine.why or nanny.describe(code)
        self.dirty = True
        if self.stopping:
            engine.state = "stopped"
        elif engine.renewing:
            self.say(engine, "renewal: the controller dropped this engine's registration;"
                             " starting it again now")
            engine.state, engine.due = "waiting", now
        elif code == 0:
            engine.state = "stopped"
        elif not self.options["restart"]:
            self.say(engine, f"the engine ended ({why}); ENGINE_RESTART=no: it stays stopped")
            engine.state = "stopped"
        else:
            engine.crashes = [t for t in engine.crashes if now - t < nanny.WINDOW] + [now]
            if len(engine.crashes) > nanny.GIVE_UP_AFTER:
                line = (f"gave up: the engine ended {len(engine.crashes)} times in "
                        f"{nanny.WINDOW / 60:g} min, the last time: {why}")
                self.say(engine, f"{line}; fab engines.restart starts it again")
                with open(self.path(f"-engine-{engine.number}.gaveup"), "w") as marker:
                    marker.write(line + "\n")
                engine.state = "gaveup"
            else:
                delay = nanny.back_off(len(engine.crashes))
                self.say(engine, f"restart: the engine ended ({why}); starting it again in {delay:g} s")
                engine.state, engine.due = "waiting", now + delay
        engine.why = ""

    # -- what the loop looks at ---------------------------------------------------------
    def reap(self):
        by_pid = {e.child.pid: e for e in self.engines.values() if e.child}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid in by_pid:
                self.ended(by_pid.pop(pid), status)

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
                for engine in self.engines.values():
                    if engine.state in ("stopped", "gaveup"):
                        engine.state, engine.due, engine.crashes = "waiting", 0.0, []
                        self.dirty = True
            elif words[:1] == ["renew"] and words[1:] and words[1].isdigit():
                engine = self.engines.get(int(words[1]))
                if engine and engine.child:
                    engine.renewing = True
                    self.end(engine)

    def watch_memory(self, now):
        if now - self.scanned >= RESCAN:
            for engine in self.engines.values():
                engine.tree = process_tree.tree(engine.child.pid) if engine.child else []
            self.scanned = now
        for engine in self.engines.values():
            if not engine.child:
                continue
            if not engine.tree:  # started since the last scan: the engine alone until the next
                engine.tree = process_tree.alone(engine.child.pid)
            engine.rss = process_tree.resident(engine.tree)
            if self.limit and engine.rss > self.limit and not engine.why:
                over = nanny.size(engine.rss - self.limit)
                self.say(engine, f"the engine uses {nanny.size(engine.rss)}, {over} over "
                                 f"MEMORY_LIMIT ({nanny.size(self.limit)}): ending it")
                engine.why = f"passed MEMORY_LIMIT ({nanny.size(self.limit)}) by {over}"
                self.end(engine, signal.SIGKILL)

    def finish_pending(self, now):
        for pid, deadline in list(self.pending.items()):
            if now >= deadline:
                self.signal_group(pid, signal.SIGKILL)
                del self.pending[pid]

    def write_state(self):
        state = {"pid": os.getpid(), "mode": self.mode, "time": time.time(), "host": self.host,
                 "engines": {str(n): e.facts(self.limit) for n, e in self.engines.items()}}
        partial = self.path(".json.partial")
        with open(partial, "w") as out:
            json.dump(state, out)
        os.replace(partial, self.path("-engines.json"))
        self.dirty = False

    def run(self):
        last_memory = 0.0
        while not self.stopping:
            now = time.monotonic()
            for engine in self.engines.values():
                if engine.state == "waiting" and now >= engine.due:
                    self.start(engine)
            if self.dirty:
                self.write_state()
            asking = {e.child.request: e for e in self.engines.values()
                      if e.child and e.child.request is not None}
            try:
                ready = select.select(list(asking), [], [], TICK)[0]
            except InterruptedError:
                ready = []
            for fd in ready:
                engine = asking[fd]
                engine.nanny = self.starter.serve(engine.child, self.path(f"-engine-{engine.number}.log"))
            self.reap()
            self.read_requests()
            now = time.monotonic()
            if self.limit and now - last_memory >= nanny.WATCH or now - self.sampled >= SAMPLE:
                self.watch_memory(now)
                last_memory = now
            if now - self.sampled >= SAMPLE:
                self.host, self.sampled, self.dirty = host_sample.sample(), now, True
            self.finish_pending(now)
            if self.dirty:
                self.write_state()
        return self.shut_down()

    def shut_down(self):
        """End every engine (SIGTERM to its process group), then give their KernelNannies
        the time to tell the hub (they end by themselves once their engine has); SIGKILL to
        what is left after GRACE s each."""
        groups = [e.child.pid for e in self.engines.values() if e.child]
        nannies = [e.nanny for e in self.engines.values() if e.nanny] + list(self.pending)
        for pgid in groups:
            self.signal_group(pgid, signal.SIGTERM)
        self.wait(lambda: any(e.child for e in self.engines.values()))
        self.wait(lambda: any(process_tree.alive(pid) for pid in nannies))
        for pgid in groups + nannies:
            self.signal_group(pgid, signal.SIGKILL)
        self.reap()
        return 0

    def wait(self, busy):
        """Reap until ``busy()`` is false, at most GRACE s."""
        deadline = time.monotonic() + GRACE
        while busy() and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)


def options_of(argv):
    """The options and ipengine's argv, from the supervisor's command line (see the module)."""
    if len(argv) < 10 or argv[8] != "--" or not argv[4].isdigit():
        raise SystemExit("usage: supervisor.py RUN_DIR NAME LABEL COUNT RESTART LIMIT DEVICES"
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
