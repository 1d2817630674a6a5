"""
The controller's throughput with short tasks, the project's (``tasks/remote/master/controller.py``:
the healing scheduler) beside ipyparallel's own ``ipcontroller``, both up at once on this
machine with 2 local engines each, measured in alternating rounds (each round takes the
two in the other order, so that the machine's noise falls on both):

- a load-balanced ``map_sync(lambda x: x, range(TASKS))``, tasks/s;
- ``apply_async`` x TASKS through the load-balanced view, then a wait for them all, tasks/s;
- DirectView ``apply_sync`` round trips on one engine, per second;
- the CPU (user + system, from /proc through psutil) of each of the controller's processes
  during the two load-balanced patterns, per task: the hub (the process started), the task
  scheduler (the one that listens on the clients' task port) and the others together.

The ceiling is one over the hottest process's (the hub's or the task scheduler's) CPU per task: where a controller stops,
whatever the number of engines.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ipyparallel as ipp
import psutil

from . import methods
from .report import median, table

TASKS = 3000
ROUND_TRIPS = 600
BIN = Path(sys.executable).parent


class Controller:
    """A controller (*project*: the project's, else ipyparallel's own) and 2 engines, in a
    profile folder of their own under *folder*, and a client of them."""

    def __init__(self, folder, project):
        self.project, self.label = project, "project" if project else f"ipyparallel {ipp.__version__}"
        self.profile = folder / ("project" if project else "stock")
        self.run = self.profile / "run"
        self.run.mkdir(parents=True)
        if project:  # as on a host: RUN/ipp_remote is the package tasks/remote
            (self.run / "ipp_remote").symlink_to(methods.PROJECT / "tasks" / "remote")
            command = [sys.executable, str(self.run / "ipp_remote"), "master.controller", str(self.run)]
        else:
            command = [str(BIN / "ipcontroller")]
        self.command = command + [f"--profile-dir={self.profile}", "--ip=127.0.0.1"]
        self.processes = []

    def start(self):
        log = open(self.run / "controller.log", "w")
        self.controller = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.processes.append(self.controller)
        client_file = self.profile / "security" / "ipcontroller-client.json"
        engine_file = self.profile / "security" / "ipcontroller-engine.json"
        self._wait(lambda: client_file.exists() and engine_file.exists(), "connection files")
        for number in range(2):
            engine_log = open(self.run / f"engine{number}.log", "w")
            self.processes.append(subprocess.Popen(
                [str(BIN / "ipengine"), f"--profile-dir={self.profile}"], stdout=engine_log,
                stderr=subprocess.STDOUT, start_new_session=True))
        self.client = ipp.Client(str(client_file), timeout=30)
        self.client.wait_for_engines(2, timeout=120)
        self.view = self.client.load_balanced_view()
        self.view.map_sync(lambda x: x, range(200))  # warm: imports, connections
        task_port = json.loads(client_file.read_text())["task"]
        self.roles = roles(psutil.Process(self.controller.pid), task_port)
        return self

    def _wait(self, predicate, what, timeout=120):
        end = time.monotonic() + timeout
        while not predicate():
            if self.controller.poll() is not None or time.monotonic() > end:
                raise methods.BenchError(f"{self.label}: no {what}; see {self.run}/controller.log")
            time.sleep(0.1)

    def stop(self):
        if getattr(self, "client", None):
            self.client.close()
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def cpu(self):
        """CPU seconds so far of each role: {"hub": s, "task scheduler": s, "others": s}."""
        seconds = dict.fromkeys(("hub", "task scheduler", "others"), 0.0)
        for role, process in self.roles:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            seconds[role] += times.user + times.system
        return seconds

    def patterns(self):
        """One round: {"map": tasks/s, "burst": tasks/s, "round trips": /s, "cpu": {role: s per task}}."""
        before = self.cpu()
        began = time.perf_counter()
        self.view.map_sync(lambda x: x, range(TASKS))
        mapped = TASKS / (time.perf_counter() - began)
        began = time.perf_counter()
        results = [self.view.apply_async(lambda x: x, n) for n in range(TASKS)]
        self.client.wait(results, timeout=600)
        burst = TASKS / (time.perf_counter() - began)
        after = self.cpu()
        direct = self.client[0]
        began = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            direct.apply_sync(lambda: 0)
        trips = ROUND_TRIPS / (time.perf_counter() - began)
        return {"map": mapped, "burst": burst, "round trips": trips,
                "cpu": {role: (after[role] - before[role]) / (2 * TASKS) for role in after}}


def roles(hub, task_port):
    """The controller's processes, each with its role (see the module)."""
    found = [("hub", hub)]
    for child in hub.children(recursive=True):
        try:
            listening = {c.laddr.port for c in child.net_connections("tcp") if c.status == "LISTEN"}
        except psutil.Error:
            continue
        found.append(("task scheduler" if task_port in listening else "others", child))
    if sum(role == "task scheduler" for role, _ in found) != 1:
        raise methods.BenchError(f"no single process listens on the task port {task_port}")
    return found


def measure(rounds, say):
    """{label: [round, ...]} (see `Controller.patterns`), the two controllers alternating."""
    samples = {}
    with tempfile.TemporaryDirectory() as folder:
        controllers = [Controller(Path(folder), True), Controller(Path(folder), False)]
        try:
            for controller in controllers:
                controller.start()
            for round_ in range(rounds):
                for controller in controllers[round_ % 2:] + controllers[:round_ % 2]:
                    found = controller.patterns()
                    samples.setdefault(controller.label, []).append(found)
                    say(f"round {round_ + 1}/{rounds}  {controller.label:<16} map {found['map']:5.0f}/s"
                        f"  burst {found['burst']:5.0f}/s  round trips {found['round trips']:5.0f}/s")
        finally:
            for controller in controllers:
                controller.stop()
    return samples


def throughput_table(samples):
    """The project's controller beside ipyparallel's: a row per measure, medians, and their ratio."""
    project, stock = samples["project"], next(v for k, v in samples.items() if k != "project")

    def of(runs, key):
        return median([run[key] for run in runs])

    def cpu(runs, role):
        return median([sum(run["cpu"].values()) if role == "all" else run["cpu"][role] for run in runs])

    def hottest(runs):
        return median([max(run["cpu"]["hub"], run["cpu"]["task scheduler"]) for run in runs])
    rows = []
    for label, key in ((f"load-balanced map of {TASKS}, tasks/s", "map"),
                       (f"`apply_async` x {TASKS} then wait, tasks/s", "burst"),
                       ("DirectView `apply_sync` round trips/s", "round trips")):
        rows.append([label, f"{of(project, key):.0f}", f"{of(stock, key):.0f}",
                     f"{of(project, key) / of(stock, key):.2f}"])
    for label, role in (("controller CPU per task, all its processes", "all"),
                        ("of which the task scheduler's process", "task scheduler"),
                        ("of which the hub's process", "hub"), ("of which the others", "others")):
        rows.append([label, f"{cpu(project, role) * 1000:.2f} ms", f"{cpu(stock, role) * 1000:.2f} ms",
                     f"{cpu(project, role) / cpu(stock, role):.2f}"])
    rows.append(["ceiling: 1 / the hottest process's CPU per task, tasks/s", f"{1 / hottest(project):.0f}",
                 f"{1 / hottest(stock):.0f}", f"{hottest(stock) / hottest(project):.2f}"])
    return table(["2 local engines", "project", next(k for k in samples if k != "project"), "ratio"],
                 rows)
