"""
The steps of the master (``tasks/remote/steps/master/``): start and stop the controller and
Jupyter, read their files, ask the controller (the probe).
"""

import json

from .script import Step
from .shipped import as_base64, package, program


def heartbeat(engines):
    """
    ``(period in ms, registration timeout in s)`` of the controller's heartbeat for a
    cluster of *engines*. The period is 1 s up to 100 engines, then 10 ms more per
    engine up to 5 s: the heart monitor pings every engine each period. A registration
    waits for the engine's first heartbeat, which an engine sends only once its kernel
    is set up (seconds of CPU, tens of them on a host where many engines start at once):
    at least 60 s (ipyparallel's default, 30 s, dropped most of 200 engines starting on
    a busy machine), and half a second more per engine past 120.
    """
    period = min(5000, max(1000, 10 * (engines or 0)))
    return period, max(60, (engines or 0) // 2)


def start_master(settings, address, engines=None):
    """Start what is missing of controller and Jupyter, each kept by the nanny, the
    controller on *address* alone (see `tasks.steps.address`) with the heartbeat for
    *engines* (see `heartbeat`), its ports drawn from ``CONTROLLER_PORTS`` (less Jupyter's)
    when it is set (``master/port_pool.py``). Jupyter serves the dashboard (``ipp_dashboard``), and
    its IPython kernels load ``ipp_cluster`` (a server extension too): a plain
    ``ipp.Client()`` there is ``ipp_cluster.Client()``."""
    period, registration = heartbeat(engines)
    return Step("start_master", (address, settings.jupyter_port, settings.notebook_dir,
                                 "yes" if settings.encrypt else "no", period, registration,
                                 settings.controller_pool),
                package("start_master"))


def put_examples(settings, packed):
    """Put the example notebooks (*packed*: a tar.gz) in ``NOTEBOOK_DIR/ipp-examples``."""
    return Step("put_examples", (settings.notebook_dir,), as_base64(packed))


#: Seconds the longest stop of one role takes on a host (``halt`` in ``steps/lib.sh``: 10 s
#: for its keeper, 5 s after SIGTERM, 5 s more for the KernelNannies, then SIGKILL): a step
#: that stops ROLES roles may take ROLES times as long before the host is slow at all.
HALT = 21


def stop_master():
    """Stop the controller and Jupyter; reports ``left_controller=``, ``left_jupyter=``."""
    return Step("stop_master")


def write_plan(label, facts):
    """Write, on the master, what `start_engines` reported for the engine host *label*
    (expected, threads, devices): the dashboard shows it beside what the hub knows."""
    plan = {"expected": int(facts.get("expected") or 0),
            "threads": int(facts["threads"]) if facts.get("threads", "").isdigit() else None,
            "devices": facts.get("devices", "").split()}
    return Step("write_plan", (label, json.dumps(plan)))


def read_engine_file():
    """Report the controller's engine connection file, base64, as ``engine_file=``."""
    return Step("read_engine_file")


def controller_ports():
    """Report ``controller_ports=ADDRESS PORT...``, where the engines connect to the running
    controller (read from its engine connection file by ``shared/reach.py``), or empty when the
    controller does not run."""
    return Step("controller_ports", (), program("shared/reach.py"))


def read_client_file():
    """Report the controller's client connection file, base64, as ``client_file=``."""
    return Step("read_client_file")


def read_token():
    """Report Jupyter's ``token=``, empty when there is none (the master is not started):
    always followed by a `probe`, which says why."""
    return Step("read_token")


def relay(port):
    """Relay the rest of the script's stdin (a browser's connection, sent once the relay says
    ``relay=yes``) to 127.0.0.1:*port* when the server end of that connection is this user's,
    and back (``shared/loopback.py``'s `relay`); refused, say why on stderr and exit 1."""
    return Step("relay", (port,), package("relay"), stream=True)


def probe(settings, expected=None, wait=0.0, shutdown=(), jupyter=True, controller=True,
          started=False, known_orphans=()):
    """
    Ask the controller, through ipyparallel's own `Client` on the master, for engines.

    See ``tasks/remote/master/probe.py``: with *expected* (``{label: count}``) and *wait*
    seconds it waits for those counts, or for an orphan not in *known_orphans*; with *shutdown* (labels) it first shuts those
    engines down; with *jupyter* it checks (and waits) that Jupyter answers, *started*
    saying that it was just started. Reports ``probe=``.
    """
    arguments = json.dumps({"name": settings.cluster_name, "profile": settings.ipp_profile,
                            "port": settings.jupyter_port, "expected": expected or {},
                            "wait": wait, "shutdown": list(shutdown), "jupyter": jupyter,
                            "controller": controller, "started": started,
                            "known_orphans": list(known_orphans)})
    return Step("probe", (arguments,), package("probe"))
