"""
The cluster's dashboard: a Jupyter server extension that the master's Jupyter loads
(``tasks/remote/start_master.sh`` puts this file and ``ipp_dashboard.html`` on its
``PYTHONPATH`` and names it in ``ServerApp.jpserver_extensions``). Two pages of that
server, behind its token like every other one, and no process or port of their own:

- ``/ipp-dashboard/``: the page (``ipp_dashboard.html``: HTML, CSS and a small script,
  nothing from the internet), which reads the next one every 2 s;
- ``/ipp-dashboard/state``: one JSON document, the cluster as the hub sees it.

`Watcher` asks the hub alone, through its query socket, as ipyparallel's `Client` does:
``connection_request`` (the engines and their ids), ``queue_request`` (each engine's queue)
and ``db_request`` (the task records the hub received since the last read: the hub copies
each record it returns, buffers and all, which took 0.1 to 0.35 ms a record, measured, so
a read of the whole window would hold up the hub for a quarter of a second once a
thousand tasks ran); never an engine. It keeps the window's tasks itself, and one
socket with a routing id of its own, and drops it for a new one when the hub does not
answer within a second (a controller that restarts). It reads the rest from the run
directory: the engines each host should run (written by fab when it starts them) and
the controller's log (its start and its nanny's restarts: see ``ipp_screens.py``, which
``start_master.sh`` puts beside this file).
"""

import asyncio
import datetime
import glob
import json
import os
import threading
import time
import uuid

import zmq
from jupyter_client.session import Session
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

if __package__:  # imported as tasks.remote.ipp_dashboard, by the tests
    from . import ipp_screens as screens
else:  # the master's Jupyter imports it from RUN_DIR/python, ipp_screens.py beside it
    import ipp_screens as screens

HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW = 300.0  # seconds of task stream the page shows
FRESH = 1.0  # seconds a state is served again before the hub is asked anew
TIMEOUT = 1.0  # seconds the hub has to answer one request
OVERLAP = 2.0  # seconds of records asked for again at each read: none is missed between two


class Watcher:
    """The cluster's state, from the hub's query socket and the run directory."""

    def __init__(self, profile_dir, run_dir, name):
        self.profile_dir, self.run_dir, self.name = profile_dir, run_dir, name
        self.lock = threading.Lock()
        self.socket = self.session = None
        self.cached, self.cached_at = None, 0.0
        self.seen = {}  # "LABEL/N": engine uuids seen, in order (a restart adds one)
        self.last_completed = None  # (time, completed count), for the rate
        self.tasks = {}  # msg_id: the task's bar in the stream, for the last WINDOW s
        self.asked_until = None  # when the last records asked of the hub were received
        self.log = screens.SessionLog(os.path.join(run_dir, f"{name}-controller.log"))

    def state(self):
        """The state, asked of the hub at most once per `FRESH` s (several pages share it)."""
        with self.lock:
            if self.cached is None or time.monotonic() - self.cached_at > FRESH:
                self.cached, self.cached_at = self.read(), time.monotonic()
            return self.cached

    def read(self):
        began, asked = time.perf_counter(), 0
        state = {"cluster": self.name, "time": time.time(), "controller": self.controller(),
                 "hosts": [], "totals": None, "tasks": [], "error": None}
        try:
            engines = {int(k): v for k, v in self.ask("connection_request", {})["engines"].items()}
            queues = self.ask("queue_request", {"targets": None, "verbose": False})
            now = time.time()  # the hub's clock: it runs on this machine
            since = now - WINDOW if self.asked_until is None else self.asked_until - OVERLAP
            received = {"$exists": True, "$gte": _iso(since)}  # in this order: None >= a date fails
            records = self.ask("db_request", {"query": {"received": received}, "keys": [
                "engine_uuid", "started", "completed", "result_content"]})["records"]
            self.asked_until, asked = now, 3
        except (OSError, zmq.ZMQError, KeyError, ValueError) as error:
            self.close()
            state["error"] = f"the controller does not answer ({error})"
            engines, queues, records = {}, {}, []
        state["hosts"] = self.hosts(engines, queues)
        ids = {uid: eid for eid, uid in engines.items()}
        self.tasks.update((r["msg_id"], _task(r, ids)) for r in records if r.get("started"))
        for msg_id in [m for m, t in self.tasks.items() if (t["completed"] or 0) < state["time"] - WINDOW]:
            del self.tasks[msg_id]
        state["tasks"] = sorted(self.tasks.values(), key=lambda task: task["started"])
        if asked:
            state["totals"] = self.totals(queues)
        state["cost"] = {"requests": asked, "records": len(records),
                         "seconds": round(time.perf_counter() - began, 4)}
        return state

    def ask(self, msg_type, content):
        """One request to the hub; its reply's content, or OSError after `TIMEOUT` s."""
        if self.socket is None:
            self.connect()
        self.session.send(self.socket, msg_type, content)
        if not self.socket.poll(TIMEOUT * 1000):
            raise OSError("no answer in 1 s")
        _, reply = self.session.recv(self.socket, mode=0)
        if reply["content"].get("status") not in (None, "ok"):
            raise ValueError(reply["content"].get("evalue", "error"))
        return reply["content"]

    def connect(self):
        path = os.path.join(self.profile_dir, "security", "ipcontroller-client.json")
        with open(path) as file:
            info = json.load(file)
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"],
                               packer=info.get("pack", "json"), unpacker=info.get("unpack", "json"))
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.routing_id = f"ipp-dashboard-{uuid.uuid4().hex}".encode()
        self.socket.linger = 0
        if info.get("curve_serverkey"):
            self.socket.curve_serverkey = info["curve_serverkey"].encode()
            self.socket.curve_publickey, self.socket.curve_secretkey = zmq.curve_keypair()
        self.socket.connect(f"{info['interface']}:{info['registration']}")

    def close(self):
        if self.socket is not None:
            self.socket.close()
        self.socket = None

    def hosts(self, engines, queues):
        """A row per engine host: its engines (from the hub) and what fab planned there."""
        plans = {}
        for path in glob.glob(os.path.join(self.run_dir, "dashboard", "*.json")):
            try:  # gone since the listing (stop_master.sh), or half written (an older fab's)
                with open(path) as file:
                    plan = json.load(file)
            except (OSError, ValueError):
                continue
            if isinstance(plan, dict):
                plans[os.path.basename(path)[:-len(".json")]] = plan
        rows = {label: {"host": label, "expected": plan.get("expected"), "engines": [],
                        "threads": plan.get("threads")} for label, plan in plans.items()}
        for eid, uid in sorted(engines.items()):
            label, _, rest = uid.partition("/")
            number = rest.split("/")[0] if rest else "?"
            seen = self.seen.setdefault(f"{label}/{number}", [])
            if uid not in seen:
                seen.append(uid)
            row = rows.setdefault(label, {"host": label, "expected": None, "engines": [],
                                          "threads": None})
            queue = queues.get(str(eid), {})
            waiting = queue.get("tasks", 0) + queue.get("queue", 0)
            devices = plans.get(label, {}).get("devices") or []
            row["engines"].append({
                "id": eid, "number": number, "busy": waiting > 0, "queued": max(0, waiting - 1),
                "completed": queue.get("completed", 0), "restarts": len(seen) - 1,
                "gpu": devices[(int(number) - 1) % len(devices)] if devices and number.isdigit() else None})
        for row in rows.values():
            row["registered"] = len(row["engines"])
        return sorted(rows.values(), key=lambda row: row["host"])

    def totals(self, queues):
        engines = [v for k, v in queues.items() if k.isdigit()]
        completed = sum(q.get("completed", 0) for q in engines)
        now = time.monotonic()
        rate = None
        if self.last_completed and now > self.last_completed[0]:
            rate = max(0.0, (completed - self.last_completed[1]) / (now - self.last_completed[0]))
        self.last_completed = (now, completed)
        return {"queued": queues.get("unassigned", 0) + sum(
                    max(0, q.get("tasks", 0) + q.get("queue", 0) - 1) for q in engines),
                "running": sum(1 for q in engines if q.get("tasks", 0) + q.get("queue", 0)),
                "completed": completed,
                "failed": sum(1 for task in self.tasks.values() if task["ok"] is False),
                "per_second": None if rate is None else round(rate, 2)}

    def controller(self):
        """The controller's session start and its nanny's restarts, from its log, read on
        from where the last read ended (see `screens.SessionLog`)."""
        log = self.log.read()
        return {"started": log.started, "restarts": log.restarts, "last_restart": log.last_restart}


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def _failed(record):
    return (record.get("result_content") or {}).get("status") not in (None, "ok")


def _task(record, ids):
    """A bar of the task stream: its engine (*ids*: engine id by uuid), start and end
    (seconds since the epoch), success."""

    def seconds(value):
        if not value:
            return None
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)).timestamp()
    return {"engine": ids.get(record.get("engine_uuid")), "started": seconds(record.get("started")),
            "completed": seconds(record.get("completed")),
            "ok": None if not record.get("completed") else not _failed(record)}


class PageHandler(JupyterHandler):
    @web.authenticated
    def get(self):
        with open(os.path.join(HERE, "ipp_dashboard.html")) as page:
            self.finish(page.read())


class StateHandler(APIHandler):
    @web.authenticated
    async def get(self):
        watcher = self.settings["ipp_dashboard_watcher"]
        state = await asyncio.get_running_loop().run_in_executor(None, watcher.state)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(state))


def _jupyter_server_extension_points():
    return [{"module": "ipp_dashboard"}]


def _load_jupyter_server_extension(server):
    profile = os.environ.get("IPP_PROFILE", "default")
    ipython_dir = os.environ.get("IPYTHONDIR", os.path.expanduser("~/.ipython"))
    server.web_app.settings["ipp_dashboard_watcher"] = Watcher(
        os.path.join(ipython_dir, f"profile_{profile}"), os.environ.get("IPP_CLUSTER_RUN", "."),
        os.environ.get("IPP_CLUSTER_NAME", "ipp"))
    base = url_path_join(server.web_app.settings["base_url"], "ipp-dashboard")
    server.web_app.add_handlers(".*$", [(base + "/?", PageHandler), (base + "/state", StateHandler)])
    server.log.info(f"ipp_dashboard: the cluster's dashboard at {base}/")
