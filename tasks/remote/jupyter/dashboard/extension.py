"""
The cluster's dashboard: a Jupyter server extension that the master's Jupyter loads
(``tasks/remote/steps/master/start_master.sh`` puts this file, ``dashboard/page.html`` and the modules
it imports on its ``PYTHONPATH`` and names it in ``ServerApp.jpserver_extensions``).
Pages of that server, behind its token like every other one, and no process or port of
their own:

- ``/ipp-dashboard/``: the page (``dashboard/page.html``: HTML, CSS and a small script,
  nothing from the internet), which reads the next one every 2 s;
- ``/ipp-dashboard/state``: one JSON document, the cluster now (its size bounded: see
  ``dashboard/stream.py``);
- ``/ipp-dashboard/failure?msg_id=ID``: one failed task, its traceback too.

`Watcher` keeps the state. The tasks come from the controller's IOPub relay, where the
engines say when they take and end each request (`Listener`, a thread with a socket of
its own: see ``dashboard/listener.py`` and ``dashboard/stream.py``); the engines and their queues from the hub's query
socket, two requests per read (``connection_request``, ``queue_request``), as
ipyparallel's `Client` asks them, never the hub's task records (it copies each record it
returns, buffers and all, and keeps only the last 1024) and never an engine. A socket to
the hub that gets no answer within a second is dropped for a new one (a controller that
restarts). The rest comes from the run directory: the plans fab wrote, the hosts' samples
(``dashboard/hosts.py``), the controller's log (its start and its nanny's restarts, see
``screen_logs.py``) and the history that outlives restarts (``dashboard/history.py``).
"""

import asyncio
import json
import os
import threading
import time
import uuid

import zmq
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ...shared import screen_logs as screens
from ...shared import host_reports
from . import hosts, stream
from .history import History
from .listener import Listener, connection, socket_to

HERE = os.path.dirname(os.path.abspath(__file__))
FRESH = 1.0  # seconds a state is served again before the hub is asked anew
TIMEOUT = 1.0  # seconds the hub has to answer one request
RATE = 10.0  # seconds over which the completion rate is measured


class Watcher:
    """The cluster's state (see the module)."""

    def __init__(self, profile_dir, run_dir, name):
        self.profile_dir, self.run_dir, self.name = profile_dir, run_dir, name
        self.lock = threading.Lock()
        self.socket = self.session = None
        self.cached, self.cached_at = None, 0.0
        self.rates = []  # (time, completed) of the last RATE s
        self.stream = stream.TaskStream()
        self.history = History(os.path.join(run_dir, "dashboard.sqlite"))
        self.log = screens.SessionLog(os.path.join(run_dir, f"{name}-controller.log"))
        self.listener = None
        self.engine_ids = {}  # the hub's engines at the last read: {uuid: id}

    def listen(self):
        """Hear the engines from now on (Jupyter's start), page open or not."""
        with self.lock:
            if self.listener is None:
                self.listener = Listener(self)
                self.listener.start()

    def state(self):
        """The state, asked of the hub at most once per `FRESH` s (several pages share it)."""
        self.listen()
        with self.lock:
            if self.cached is None or time.monotonic() - self.cached_at > FRESH:
                self.cached, self.cached_at = self.read(), time.monotonic()
            return self.cached

    def read(self):
        """The state now: see the module; ``cost`` says how many hub requests it took and
        how long."""
        began, asked = time.perf_counter(), 0
        state = {"cluster": self.name, "time": time.time(), "controller": self.controller(),
                 "hosts": [], "totals": None, "stream": None, "failures": [], "error": None}
        try:
            engines = {int(k): v for k, v in self.ask("connection_request", {})["engines"].items()}
            queues = self.ask("queue_request", {"targets": None, "verbose": False})
            asked = 2
        except (OSError, zmq.ZMQError, KeyError, ValueError) as error:
            self.close()
            state["error"] = f"the controller does not answer ({error})"
            engines, queues = {}, {}
        now, controller = state["time"], state["controller"]
        self.history.begin(controller["started"])
        if asked:
            self.engine_ids = {uid: eid for eid, uid in engines.items()}
            if self.listener is not None:  # what waited for its engine to be listed
                self.listener.retake()
            self.stream.place({eid: uid.partition("/")[0] for eid, uid in engines.items()})
            self.stream.settle({eid: sum(queues.get(str(eid), {}).get(key, 0) for key in
                                         ("tasks", "queue")) for eid in engines}, now)
        self.history.add_failures(self.stream.take_failures())
        if asked:  # first: it records the engines seen, whose restarts the rows count
            state["totals"] = self.totals(engines, queues, controller["restarts"])
        many = len(engines) >= stream.MANY
        run = os.path.join(self.run_dir, "{}")
        samples = hosts.read_folder(run.format("hosts"), host_reports.sample)  # a bad one is left out
        state["hosts"] = hosts.rows(
            hosts.read_folder(run.format("dashboard")), samples,
            engines, queues, self.history.restarts(), set(self.stream.running), now, many)
        state["stream"] = self.stream.bars(now, many, set(self.stream.labels.values()) if many
                                           else engines)
        state["failures"] = self.history.failure_groups()
        state["cost"] = {"requests": asked, "seconds": round(time.perf_counter() - began, 4)}
        return state

    def totals(self, engines, queues, restarts):
        """The counts of the page's head: *restarts* of the controller since its start tell
        the history that the hub counts anew."""
        counts = {}
        for eid, uid in engines.items():
            label, _, rest = uid.partition("/")
            counts[uid] = (label, rest.split("/")[0], queues.get(str(eid), {}).get("completed", 0))
        completed = self.history.completed(counts, restarts)
        now = time.monotonic()
        self.rates = [r for r in self.rates if r[0] > now - RATE] + [(now, completed)]
        first = self.rates[0]
        rate = (completed - first[1]) / (now - first[0]) if now > first[0] else None
        waiting = sum(q.get("tasks", 0) + q.get("queue", 0) for k, q in queues.items() if k.isdigit())
        running = len(self.stream.running)
        return {"queued": queues.get("unassigned", 0) + max(0, waiting - running),
                "running": running, "completed": completed, "failed": self.history.failed(),
                "per_second": None if rate is None else round(max(0.0, rate), 2)}

    def failure(self, msg_id):
        with self.lock:
            return self.history.traceback(msg_id)

    def ask(self, msg_type, content):
        """One request to the hub; its reply's content, or OSError after `TIMEOUT` s."""
        if self.socket is None:
            info, self.session = connection(self.profile_dir)
            self.socket = socket_to(info, zmq.DEALER, "registration")
            self.socket.routing_id = f"ipp-dashboard-{uuid.uuid4().hex}".encode()
        self.session.send(self.socket, msg_type, content)
        if not self.socket.poll(TIMEOUT * 1000):
            raise OSError("no answer in 1 s")
        _, reply = self.session.recv(self.socket, mode=0)
        if reply["content"].get("status") not in (None, "ok"):
            raise ValueError(reply["content"].get("evalue", "error"))
        return reply["content"]

    def close(self):
        if self.socket is not None:
            self.socket.close()
        self.socket = None

    def controller(self):
        """The controller's session start and its nanny's restarts, from its log, read on
        from where the last read ended (see `screens.SessionLog`)."""
        log = self.log.read()
        return {"started": log.started, "restarts": log.restarts, "last_restart": log.last_restart}


class PageHandler(JupyterHandler):
    @web.authenticated
    def get(self):
        with open(os.path.join(HERE, "page.html")) as page:
            self.finish(page.read())


class StateHandler(APIHandler):
    @web.authenticated
    async def get(self):
        watcher = self.settings["ipp_dashboard_watcher"]
        state = await asyncio.get_running_loop().run_in_executor(None, watcher.state)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(state, separators=(",", ":")))


class FailureHandler(APIHandler):
    @web.authenticated
    async def get(self):
        watcher = self.settings["ipp_dashboard_watcher"]
        found = await asyncio.get_running_loop().run_in_executor(
            None, watcher.failure, self.get_argument("msg_id"))
        if found is None:
            raise web.HTTPError(404, "no such failure")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(found))


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(server):
    profile = os.environ.get("IPP_PROFILE", "default")
    ipython_dir = os.environ.get("IPYTHONDIR", os.path.expanduser("~/.ipython"))
    watcher = Watcher(os.path.join(ipython_dir, f"profile_{profile}"),
                      os.environ.get("IPP_CLUSTER_RUN", "."), os.environ.get("IPP_CLUSTER_NAME", "ipp"))
    watcher.listen()
    server.web_app.settings["ipp_dashboard_watcher"] = watcher
    base = url_path_join(server.web_app.settings["base_url"], "ipp-dashboard")
    server.web_app.add_handlers(".*$", [(base + "/?", PageHandler), (base + "/state", StateHandler),
                                         (base + "/failure", FailureHandler)])
    server.log.info(f"ipp_dashboard: the cluster's dashboard at {base}/")
