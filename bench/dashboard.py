"""
What the dashboard costs the controller, measured on one engine host of two engines:

- one read of its data (``/ipp-dashboard/state``: two requests on the hub's query socket,
  the run directory's files and the history), as the extension times it, next to one
  ``Client.queue_status()``, ipyparallel's own request of the same socket;
- the same read, and the size of what it sends, with 100,000 tasks in the stream's
  window: a `Watcher` of this process, on the same hub, whose stream is fed 100,000
  tasks as the engines' IOPub messages feed the page's (4 minutes of them: more than
  this machine's controller runs in 5);
- the load-balanced throughput (``lview.map_sync(abs, range(2000))``) with the page open,
  its data read as often as the extension asks the hub (once a second, for any number of
  pages), and with no page: the runs alternate, so that the machine's noise falls on both;
  and the CPU the master's Jupyter took meanwhile, per 1000 tasks (its listener hears
  every task, page open or not: what it costs the master's cores, beside the controller).
"""

import json
import os
import re
import tempfile
import threading
import time
import urllib.request

import psutil

from tasks.remote.jupyter.dashboard.extension import Watcher

from . import methods
from .report import cell, median, table

TASKS = 2000
#: Seconds of one ``Client.queue_status()``, the median of 20 after one to connect.
QUEUE_STATUS = ("c.queue_status()\nseconds = []\nfor _ in range(20):\n"
                "    began = time.perf_counter()\n    c.queue_status()\n"
                "    seconds.append(time.perf_counter() - began)\n"
                "print(json.dumps(sorted(seconds)[10]))\n")
THROUGHPUT = (f"view = c.load_balanced_view()\nc.wait_for_engines(2, timeout=60)\n"
              f"view.map_sync(abs, range(100))\nbegan = time.perf_counter()\n"
              f"view.map_sync(abs, range({TASKS}))\n"
              f"print(json.dumps({TASKS} / (time.perf_counter() - began)))\n")


class Page:
    """The dashboard's data, read every *period* s in a thread while the page is open."""

    def __init__(self, port, token, period=0.5):
        self.url = f"http://127.0.0.1:{port}/ipp-dashboard/state"
        self.token, self.period = token, period
        self.asked, self.stop = set(), threading.Event()  # when each state served was read

    def read(self):
        """One read of the data (the state, with the extension's timing of its hub requests)."""
        request = urllib.request.Request(self.url, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=20) as response:
            state = json.load(response)
        if state["cost"]["requests"] != 2:
            raise methods.BenchError(f"the dashboard did not reach the hub: {state['error']}")
        return state

    def __enter__(self):
        def keep_reading():
            while not self.stop.wait(self.period):
                self.asked.add(self.read()["time"])
        self.thread = threading.Thread(target=keep_reading, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def fresh_read(page):
    """A read that asks the hub (the extension serves a state again for a second)."""
    time.sleep(1.2)
    return page.read()["cost"]["seconds"]


def read_with_many_tasks(rounds, tasks=100_000):
    """``([s], [bytes])``: reads of a `Watcher` of the bench cluster's hub whose stream holds
    *tasks* tasks, and the size of each state it makes (as the page gets it)."""
    profile = os.path.join(os.path.expanduser("~"), ".ipython", f"profile_{methods.NAME}")
    seconds, sizes = [], []
    with tempfile.TemporaryDirectory() as run_dir:
        watcher = Watcher(profile, run_dir, methods.NAME)
        engines = list(watcher.ask("connection_request", {})["engines"])
        now = time.time()
        for n in range(tasks):
            engine, start = int(engines[n % len(engines)]), now - 240 + n * 240 / tasks
            watcher.stream.began(engine, f"t{n}", start)
            watcher.stream.ended(engine, f"t{n}", start + 0.002)
        for _ in range(rounds):
            state = watcher.read()
            if state["error"]:
                raise methods.BenchError(state["error"])
            seconds.append(state["cost"]["seconds"])
            sizes.append(len(json.dumps(state, separators=(",", ":"))))
        watcher.close()
    return seconds, sizes


def jupyter(port):
    """The master's Jupyter server of *port* (its listener hears every task), a psutil Process."""
    for process in psutil.process_iter(["cmdline"]):
        words = process.info["cmdline"] or []
        if f"--port={port}" in words and any("jupyter" in w for w in words[:3]) \
                and "shared.nanny" not in words:
            return process
    raise methods.BenchError(f"no Jupyter server on port {port}")


def cpu_seconds(process):
    times = process.cpu_times()
    return times.user + times.system


def measure(fake_hosts, folder, rounds):
    """``{"read_few": [s], "read_many": [s], "payload_many": [bytes], "queue_status": [s],
    "open": [tasks/s], "closed": [tasks/s], "hub_reads": [reads/s], "jupyter_open": [s],
    "jupyter_closed": [s]}`` (the last two: Jupyter's CPU seconds per 1000 tasks)."""
    master, host = fake_hosts.hosts[0], fake_hosts.hosts[1]
    port = 18989
    inventory = methods.write_inventory(folder / "dashboard", f"[master]\n{master.address}\n"
                                        f"[engines]\n{host.address} engines=2\n", fake_hosts,
                                        JUPYTER_PORT=port)
    key = fake_hosts.client_key
    methods.fab_ok(inventory, key, "cluster.up")  # prints no URL: this master is a host of its own
    url = methods.fab_ok(inventory, key, "master.url")
    token = re.search(r"^Dashboard: \S+\?token=(\w+)$", url.stdout, re.MULTILINE)[1]
    page = Page(port, token)
    samples = {"read_few": [], "read_many": [], "payload_many": [], "queue_status": [],
               "open": [], "closed": [], "hub_reads": [], "jupyter_open": [], "jupyter_closed": []}
    try:
        server = jupyter(port)
        samples["read_few"] = [fresh_read(page) for _ in range(max(3, rounds))]
        for round_ in range(rounds):
            for open_ in ((True, False) if round_ % 2 == 0 else (False, True)):
                cpu = cpu_seconds(server)
                if not open_:
                    samples["closed"].append(methods.ask_cluster(THROUGHPUT))
                    samples["jupyter_closed"].append((cpu_seconds(server) - cpu) * 1000 / TASKS)
                    continue
                with Page(port, token) as reading:
                    began = time.perf_counter()
                    samples["open"].append(methods.ask_cluster(THROUGHPUT))
                    took = time.perf_counter() - began
                samples["jupyter_open"].append((cpu_seconds(server) - cpu) * 1000 / TASKS)
                # the states read of the hub: the other reads were served again from the cache
                samples["hub_reads"].append(len(reading.asked) / took)
        samples["read_many"], samples["payload_many"] = read_with_many_tasks(max(3, rounds))
        samples["queue_status"] = [methods.ask_cluster(QUEUE_STATUS) for _ in range(max(3, rounds))]
    finally:
        methods.fab(inventory, key, "cluster.down")
    return samples


def dashboard_table(samples):
    """The dashboard's cost: a row each, median (min-max)."""
    def ms(values):
        return cell([v * 1000 for v in values]).replace(" s", " ms")

    def rate(values):
        return cell(values).replace(" s", "/s")
    rows = [["one read of the data (2 hub requests), by the page", ms(samples["read_few"])],
            ["one read of the data with 100,000 tasks in the window", ms(samples["read_many"])],
            ["its size, 100,000 tasks in the window",
             cell([b / 1000 for b in samples["payload_many"]]).replace(" s", " KB")],
            ["ipyparallel's `Client.queue_status()` (1 hub request)", ms(samples["queue_status"])],
            [f"tasks/s, `map_sync(abs, range({TASKS}))`, page open", rate(samples["open"])],
            ["tasks/s, no page", rate(samples["closed"])],
            ["open / no page", f"{median(samples['open']) / median(samples['closed']):.2f}"],
            ["reads that asked the hub, per second, page open", rate(samples["hub_reads"])],
            ["Jupyter's CPU per 1000 tasks, page open (it hears every task, page open or not)",
             cell(samples["jupyter_open"])],
            ["Jupyter's CPU per 1000 tasks, no page", cell(samples["jupyter_closed"])]]
    return table(["dashboard (1 host, 2 engines)", "value"], rows)
