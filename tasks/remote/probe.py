"""
Ask the controller about its engines, on the master, with ipyparallel's own `Client`.

``tasks/remote/probe.sh`` runs it with the cluster's Python (``python - ARGS TOKEN_FILE``,
this file on stdin), where the controller and its client connection file are, so the
machine running ``fab`` needs no route to the controller's ports. ARGS is JSON:

- ``profile``: the IPython profile of the cluster;
- ``expected`` (``{label: count}``) and ``wait`` (seconds): return as soon as every
  label has exactly its count of engines, printing ``progress={label: count}`` each
  time the counts change;
- ``shutdown`` (labels): first ask those labels' engines to shut down;
- ``jupyter`` and ``port``: also check (and wait) that Jupyter answers on that port
  with the token read from TOKEN_FILE (it is on no command line).

It ends with one line, ``probe={...}``: ``controller`` (a client could connect),
``engines`` (registered engines per label), ``jupyter`` (it answered) and ``error``
(why the controller could not be asked). An engine's label is the part of its
uuid before the first ``/``: `tasks/remote/start_engines.sh` starts each engine with
``--Session.session=LABEL/N/TIME``.
"""

import json
import os
import sys
import time
import urllib.request

POLL = 0.05


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


def wait_for_engines(client, expected, deadline, show=print):
    """
    The engines per label once every label of *expected* has its count, or at *deadline*.

    *show* gets a ``progress=`` line each time the counts change (when anything is expected).
    """
    shown = None
    while True:
        counts = count_by_label(engine_uuids(client))
        if expected and counts != shown:
            show("progress=" + json.dumps(counts))
            shown = counts
        done = all(counts.get(label, 0) == n for label, n in expected.items())
        if done or time.monotonic() >= deadline:
            return counts
        time.sleep(POLL)


def jupyter_answers(port, token_file):
    """True when Jupyter's ``/api/status`` on 127.0.0.1:*port* answers 200 to the token."""
    try:
        with open(token_file) as token:
            headers = {"Authorization": "token " + token.read().strip()}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=headers)
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except Exception:  # not running, not yet listening, another server, a bad token
        return False


def ask_controller(args, deadline, show):
    """The controller part of the report: ``controller``, ``engines`` and ``error``."""
    import ipyparallel as ipp
    from IPython.paths import get_ipython_dir

    security = os.path.join(get_ipython_dir(), f"profile_{args['profile']}", "security")
    if not os.path.exists(os.path.join(security, "ipcontroller-client.json")):
        raise RuntimeError("no client connection file: the controller is not running")
    client = ipp.Client(profile=args["profile"], timeout=3)
    try:
        if args.get("shutdown"):
            shut_down(client, args["shutdown"])
        return wait_for_engines(client, args.get("expected", {}), deadline, show)
    finally:
        client.close()


def probe(args, token_file, show=print):
    """The report of one probe (see the module's docstring)."""
    deadline = time.monotonic() + args.get("wait", 0)
    report = {"controller": False, "engines": {}, "jupyter": False, "error": ""}
    try:
        report["engines"] = ask_controller(args, deadline, show)
        report["controller"] = True
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
    while args.get("jupyter"):
        report["jupyter"] = jupyter_answers(args["port"], token_file)
        if report["jupyter"] or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return report


def main(argv):
    def show(line):
        print(line, flush=True)
    show("probe=" + json.dumps(probe(json.loads(argv[1]), argv[2], show)))


if __name__ == "__main__":
    main(sys.argv)
