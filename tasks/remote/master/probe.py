"""
Ask the controller about its engines, on the master, with ipyparallel's own `Client`.

``tasks/remote/steps/master/probe.sh`` runs it with the cluster's Python (``python CODE/ipp_remote master.probe
ARGS RUN_DIR``, from a folder of its own where it unpacked it with ``shared/``), where
the controller and its client connection file are, so the machine running ``fab`` needs
no route to the controller's ports. ARGS is JSON:

- ``name`` and ``profile``: the cluster's name and IPython profile;
- ``controller`` (default true): ask the controller at all;
- ``expected`` (``{label: count}``) and ``wait`` (seconds): return as soon as every
  label has exactly its count of engines, printing ``progress={label: count}`` each
  time the counts change, or as soon as an engine of those labels is an orphan
  not listed in ``known_orphans`` (see `orphans`);
- ``shutdown`` (labels): first ask those labels' engines to shut down;
- ``jupyter`` and ``port``: also check (and wait) that Jupyter answers on that port
  with the token read from RUN_DIR/jupyter.token (it is on no command line), sent only
  to a listener of this user's (``loopback.py``, unpacked beside this file); stop
  waiting as soon as its screen session has ended (``started``: it was just started,
  so its log's last line says why).

It ends with one line, ``probe={...}``: ``controller`` (a client could connect),
``engines`` (registered engines per label), ``orphans`` (their uuids), ``error`` (why
the controller could not be asked), ``jupyter`` (it answered) and ``jupyter_problem``
(why it did not). An engine's label is the part of its uuid before the first ``/``:
each engine registers as ``LABEL/N/TIME/RANDOM`` (its supervisor's 0600 config file, see
``engine_life.py``).
"""

import http.client
import json
import os
import sys
import time

from ..shared import loopback
from ..shared import screen_logs as screens

POLL = 0.05
#: Seconds between two reads of the controller's log for purged registrations (each reads
#: on from where the last ended: see `screens.SessionLog`).
ORPHAN_POLL = 1.0
#: Seconds between two new clients while waiting for engines (see `Registry`).
RESYNC = 5.0
#: Seconds a controller has to answer the probe's client: any, then one whose session runs.
FIRST_ANSWER, CLIENT_TIMEOUT = 3, 20


def engine_uuids(client):
    """
    ``{engine id: uuid}`` of the engines registered with *client*'s controller.

    ipyparallel has no public API for an engine's uuid; this is the one place that
    reads the private ``Client._engines`` (a test fails when ipyparallel changes it).
    """
    client.ids  # noqa: B018 -- flushes the controller's registration notifications
    return dict(client._engines)


def label_of(uuid):
    """The inventory host an engine belongs to: its uuid up to the first ``/``."""
    return uuid.split("/", 1)[0]


class Registry:
    """
    The controller's engines as a client made by ``connect()`` sees them, made whole
    again while waiting: ipyparallel's `Client` takes the engines from its connection
    reply, then subscribes to registrations, and misses for good any engine that
    registers in between (seen at 120 engines registering at once). Every `RESYNC` s
    the client is replaced by a new one, whose connection reply lists every engine
    registered by then. (Asking the controller, with ``queue_status``, would block for
    ever on a controller that died meanwhile; a connection has a timeout.)
    """

    def __init__(self, connect):
        self.connect, self.client, self.synced = connect, connect(), time.monotonic()

    def uuids(self):
        """``{engine id: uuid}``, as `engine_uuids`."""
        if time.monotonic() - self.synced >= RESYNC:
            self.client.close()
            self.client = self.connect()
            self.synced = time.monotonic()
        return engine_uuids(self.client)

    def close(self):
        self.client.close()


def count_by_label(uuids):
    """``{label: number of engines}`` for the uuids of ``engine_uuids``."""
    counts = {}
    for uuid in uuids.values():
        counts[label_of(uuid)] = counts.get(label_of(uuid), 0) + 1
    return counts


def shut_down(client, labels, timeout=5.0):
    """Ask the engines of *labels* to shut down; wait until the controller dropped them."""
    targets = [i for i, uuid in engine_uuids(client).items() if label_of(uuid) in labels]
    if targets:
        client.shutdown(targets=targets, block=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and set(targets) & set(client.ids):
        time.sleep(POLL)
    return targets


def wait_for_engines(registry, expected, deadline, show=print, look=lambda uuids: []):
    """
    ``(counts, orphans)``: the engines per label of *registry* (a `Registry`) once every
    label of *expected* has its count, or at *deadline*, or as soon as ``look(uuids)``
    (given the registered engines' uuids) finds orphans of those labels.

    *show* gets a ``progress=`` line each time the counts change (when anything is expected).
    """
    shown, looked = None, 0.0
    while True:
        uuids = registry.uuids()
        counts = count_by_label(uuids)
        if expected and counts != shown:
            show("progress=" + json.dumps(counts))
            shown = counts
        done = all(counts.get(label, 0) == n for label, n in expected.items())
        found = []
        if time.monotonic() - looked >= ORPHAN_POLL or done or time.monotonic() >= deadline:
            found, looked = look(uuids), time.monotonic()
        if done or time.monotonic() >= deadline or any(label_of(u) in expected for u in found):
            return counts, found
        time.sleep(POLL)


def orphans(purged_uuids, registered, known=()):
    """
    The purged uuids (`screens.SessionLog.purged`, of the controller's log) whose engine
    (LABEL/N) has no start registered since, less the *known* ones: each is an engine that
    runs, or ran, but that the controller does not know. The hub drops a registration
    whose first heartbeat has not come within its registration timeout (an engine starved
    of CPU sends it late), or came before the hub filed it (ipyparallel #700), and then
    ignores that heart for good, while the engine, registered as far as it knows, goes on.
    Only uuids of the engines' own form count (`screens.engine_uuid`): the purged ones come from a log.
    """
    newest = {}
    for uuid in registered.values():
        start = screens.engine_uuid(uuid)
        if start:
            newest[start[:2]] = max(newest.get(start[:2], 0), start[2])
    found = []
    for uuid in dict.fromkeys(u for u in purged_uuids if isinstance(u, str)):
        start = screens.engine_uuid(uuid)
        if start and uuid not in known and newest.get(start[:2], -1) < start[2]:
            found.append(uuid)
    return found


def jupyter_answers(port, token_file):
    """
    True when Jupyter's ``/api/status`` on 127.0.0.1:*port* answers 200 to the token. The
    token goes only through a connection whose server end is this user's
    (`loopback.connect_own`): while this user's Jupyter does not hold the port (stopped, or
    on another port) another user may, and would log in with it. Straight to the socket:
    no ``http_proxy`` ever sees it.
    """
    try:
        with open(token_file) as token:
            headers = {"Authorization": "token " + token.read().strip()}
    except OSError:  # no token: the master never started, or was stopped
        return False
    connection = loopback.connect_own(int(port), 2)
    if connection is None:
        return False
    try:
        asking = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2)
        asking.sock = connection  # the proven one: `request` connects only when it has none
        asking.request("GET", "/api/status", headers=headers)
        return asking.getresponse().status == 200
    except Exception:  # not yet serving, another server of this user's, a bad token
        return False
    finally:
        connection.close()


def jupyter_problem(args, run):
    """
    ``(problem, final)`` about Jupyter now: ``("", True)`` when it answers on its port;
    *final* when waiting cannot change the answer (it runs on another port, another user
    holds the port, or its session has ended: with ``started``, its log's last line says why).
    """
    port, session = args["port"], f"{args['name']}-jupyter"
    log = os.path.join(run, f"{session}.log").replace(os.path.expanduser("~"), "~", 1)
    if jupyter_answers(port, os.path.join(run, "jupyter.token")):
        return "", True
    alive = screens.session_alive(session)
    if not alive and not args.get("started"):
        return "Jupyter is not running: fab master.start starts it", True
    try:
        with open(os.path.join(run, "jupyter.port")) as file:
            running_port = int(file.read())
    except (OSError, ValueError):
        running_port = port
    if alive and running_port != port:
        return (f"Jupyter runs on port {running_port}, not on JUPYTER_PORT={port}: "
                "run fab master.stop, then start it again"), True
    holder = loopback.other_holder(port)
    if holder:  # whether this Jupyter still tries to listen there or ended of it
        return (f"JUPYTER_PORT {port} is taken here by {holder}: choose another JUPYTER_PORT in "
                "cluster.env, then fab master.stop and fab master.start"), True
    if not alive:
        said = screens.last_line(os.path.expanduser(log))
        return f"Jupyter exited: {said} (its log: {log})", True
    return f"Jupyter does not answer on 127.0.0.1:{port}; see its log, {log}", False


def wait_for_jupyter(args, run, deadline):
    """Wait until Jupyter answers or cannot answer, at most until *deadline*: the problem or ''."""
    while True:
        problem, final = jupyter_problem(args, run)
        if final or time.monotonic() >= deadline:
            return problem
        time.sleep(0.1)


def ask_controller(args, run, deadline, show):
    """The controller part of the report: ``controller``, ``engines``, ``orphans`` and ``error``."""
    import ipyparallel as ipp
    from IPython.paths import get_ipython_dir

    security = os.path.join(get_ipython_dir(), f"profile_{args['profile']}", "security")
    if not os.path.exists(os.path.join(security, "ipcontroller-client.json")):
        raise RuntimeError("no client connection file: the controller is not running")
    log = screens.SessionLog(os.path.join(run, f"{args['name']}-controller.log"))
    known = set(args.get("known_orphans", ()))
    registry = Registry(lambda: connect(ipp, args))
    try:
        if args.get("shutdown"):
            shut_down(registry.client, args["shutdown"])
        return wait_for_engines(registry, args.get("expected", {}), deadline, show,
                                lambda uuids: orphans(log.read().purged, uuids, known))
    finally:
        registry.close()


def connect(ipp, args):
    """
    A client of the controller. One that does not answer in `FIRST_ANSWER` s is called
    dead only when its screen session has ended: a live one on a busy master gets
    `CLIENT_TIMEOUT` s in all (3 s called a loaded controller dead).
    """
    try:
        return ipp.Client(profile=args["profile"], timeout=FIRST_ANSWER)
    except TimeoutError:
        if not screens.session_alive(f"{args['name']}-controller"):
            raise RuntimeError("no answer, and its screen session has ended: "
                               "the controller is not running") from None
    return ipp.Client(profile=args["profile"], timeout=CLIENT_TIMEOUT - FIRST_ANSWER)


def probe(args, run, show=print):
    """The report of one probe (see the module's docstring)."""
    deadline = time.monotonic() + args.get("wait", 0)
    report = {"controller": False, "engines": {}, "orphans": [], "error": "",
              "jupyter": False, "jupyter_problem": ""}
    if args.get("controller", True):
        try:
            report["engines"], report["orphans"] = ask_controller(args, run, deadline, show)
            report["controller"] = True
        except Exception as error:
            report["error"] = f"{type(error).__name__}: {error}"
    if args.get("jupyter"):
        report["jupyter_problem"] = wait_for_jupyter(args, run, deadline)
        report["jupyter"] = not report["jupyter_problem"]
    return report


def main(argv):
    def show(line):
        print(line, flush=True)
    show("probe=" + json.dumps(probe(json.loads(argv[1]), argv[2], show)))


if __name__ == "__main__":
    main(sys.argv)
