"""
Build what runs on the hosts: pure functions from settings to `Step` calls and scripts.

What runs on a host is one fixed command line, `REMOTE_SHELL`, the same in every
login shell (sh, bash, zsh, fish, ksh, tcsh, csh): a plain ``/bin/sh -s`` reading its
program from standard input. `script` writes that program: the shell library and
the step files of ``tasks/remote/``, sent as they are, then one call per `Step`.
Values reach the steps as the arguments of those calls, each quoted with
`shlex.quote` here and only here (for ``/bin/sh``, which is what reads them); data (the
notebooks, the controller's connection file, a Python program) reaches a step on
its own standard input, as a quoted here-document that no shell interprets.

Steps report on stdout as ``key=value`` lines (see `tasks.remote.protocol`), and fail with a
message on stderr and a non-zero exit, which ends the script.
"""

import base64
import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

#: The variable that marks every process of a cluster role on a host.
TAG = "IPP_CLUSTER_TAG"

#: The whole command line that reaches the login shell. ``env -u`` keeps a tag
#: that the caller may carry (a terminal inside the cluster's Jupyter) off the
#: script's own processes, which a stop would otherwise end.
REMOTE_SHELL = f"env -u {TAG} /bin/sh -s"

#: Ends a step's data. Data is base64 or a program of ``tasks/remote/``, so this
#: line (with '-', not in base64) never occurs in it; `script` checks anyway.
END_OF_DATA = "IPP-END-OF-DATA"


@dataclass(frozen=True)
class Step:
    """A call of the shell function *function* (of ``tasks/remote/<function>.sh``, or `FILES`')."""

    function: str
    args: tuple = ()
    data: str = None  # text for the function's stdin; None: /dev/null


#: The step functions that share a file (the Slurm ones); any other is ``FUNCTION.sh``.
FILES = {**dict.fromkeys(("slurm_submit", "slurm_jobs", "slurm_cancel", "slurm_cancelled",
                          "slurm_cancel_all", "slurm_cancelled_all", "slurm_restart", "slurm_hold"),
                       "slurm.sh"),
         "slurm_job": "slurm_job.sh", "slurm_node": "slurm_job.sh", "slurm_keyed": "slurm_job.sh"}


@lru_cache(maxsize=None)
def program(name):
    """The text of the file *name* of ``tasks/remote/``, as it is sent."""
    return resources.files("tasks.remote").joinpath(name).read_text()


#: The supervisor of an engine host and the modules it imports, unpacked beside it.
ENGINE_PROGRAMS = ("supervisor.py", "engine_fork.py", "engine_life.py", "engine_requests.py",
                   "engine_state.py", "host_sample.py", "host_report.py", "memory_watch.py",
                   "nanny.py", "orphan_scan.py", "process_tree.py", "timers.py")


@lru_cache(maxsize=None)
def programs(*names):
    """The files *names* of ``tasks/remote/`` as a base64 tar.gz for a step's stdin; a name
    ``DIR/NAME`` is the file NAME, unpacked into DIR."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            data = program(name.rsplit("/", 1)[-1]).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return as_base64(buffer.getvalue())


def q(value):
    """Quote one value for ``/bin/sh``."""
    return shlex.quote(str(value))


def script(settings, *steps, setup=""):
    """
    The program for the stdin of `REMOTE_SHELL` that runs *steps* in order, on one host
    whose own snippet (the inventory's ``setup``, or ``SETUP``) is *setup*: the steps that
    start programs or read what it sets up (the facts, the plan of GPUs) run it first
    (``user_env`` in ``lib.sh``).
    """
    files = dict.fromkeys(FILES.get(step.function, f"{step.function}.sh") for step in steps)
    calls = [_call(Step("setup", (settings.cluster_name, settings.ipp_profile,
                                  settings.bin_prefix, int(settings.engine_timeout), setup)))]
    calls += [_call(step) for step in steps]
    return "".join([program("lib.sh"), *(program(name) for name in files), *calls])


def _call(step):
    line = " ".join([step.function, *(q(arg) for arg in step.args)])
    if step.data is None:
        return f"{line} </dev/null\n"
    data = step.data if step.data.endswith("\n") else step.data + "\n"
    if END_OF_DATA in data.splitlines():
        raise ValueError(f"the data of {step.function} holds the line {END_OF_DATA}")
    return f"{line} <<'{END_OF_DATA}'\n{data}{END_OF_DATA}\n"


def as_base64(data):
    """*data* (bytes or text) as base64 lines, for a step's stdin."""
    return base64.encodebytes(data if isinstance(data, bytes) else data.encode()).decode()


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
    *engines* (see `heartbeat`). Jupyter serves the dashboard (``ipp_dashboard``), and
    its IPython kernels load ``ipp_cluster`` (a server extension too): a plain
    ``ipp.Client()`` there is ``ipp_cluster.Client()``."""
    period, registration = heartbeat(engines)
    return Step("start_master", (address, settings.jupyter_port, settings.notebook_dir,
                                 "yes" if settings.encrypt else "no", period, registration),
                programs("nanny.py", "process_tree.py", "controller.py", "outbox.py", "host_inbox.py",
                         "host_report.py", "refusals.py", "dashboard_hosts.py", "python/ipp_cluster.py",
                         "python/ipp_cluster_kernel.py", "python/ipp_dashboard.py",
                         "python/ipp_dashboard.html", "python/ipp_screens.py",
                         "python/dashboard_listener.py", "python/dashboard_stream.py",
                         "python/dashboard_hosts.py", "python/dashboard_history.py"))


def put_examples(settings, packed):
    """Put the example notebooks (*packed*: a tar.gz) in ``NOTEBOOK_DIR/ipp-examples``."""
    return Step("put_examples", (settings.notebook_dir,), as_base64(packed))


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


def read_client_file():
    """Report the controller's client connection file, base64, as ``client_file=``."""
    return Step("read_client_file")


def peer_address():
    """Report ``peer_address=``: where the host sees this SSH connection come from."""
    return Step("peer_address")


def write_engine_file(text):
    """Write the controller's engine connection file (*text*) on a host without a shared home."""
    return Step("write_engine_file", (), as_base64(text))


def start_engines(settings, host, planned=None, restart=False):
    """
    Start the engines of *host* (a `tasks.inventory.Host`), all kept by one supervisor
    (``tasks/remote/supervisor.py``), with their threads and GPUs (see ``plan_engines`` in
    ``lib.sh``): the inventory's ``engines=``, else one per GPU of ``gpus=``, else one per
    core (*planned*: the count the host's facts gave, when known already). A supervisor
    that runs with the same plan starts the engines it stopped or gave up on; with
    *restart* or another plan, every engine of the host starts anew.
    """
    count = host.engines or ("" if host.gpus else planned or "")
    return Step("start_engines", (host.name, count, "yes" if restart else "no",
                                  "yes" if settings.engine_restart else "no",
                                  settings.memory_limit, host.threads or "", host.gpus or ""),
                programs(*ENGINE_PROGRAMS))


def renew_engines(numbers):
    """Start the engines *numbers* of a host again at once (their registration was dropped)."""
    return Step("renew_engines", tuple(int(n) for n in numbers))


def stop_engines():
    """Stop every engine of the cluster on a host; reports ``left_engine=``."""
    return Step("stop_engines")


def host_status(host):
    """Report *host*'s cluster sessions (``sessions=``), the engines' ``supervisor=`` state,
    ``expected=`` engines and the ``threads=`` its engines run with."""
    return Step("host_status", (host.engines or "", host.gpus or ""))


def read_token():
    """Report Jupyter's ``token=``, empty when there is none (the master is not started):
    always followed by a `probe`, which says why."""
    return Step("read_token")


def port_holder(port):
    """Report ``own=`` (yes: the listeners that take 127.0.0.1:*port* are this user's alone)
    and ``holder=`` (another user who listens there)."""
    return Step("port_holder", (port,), programs("loopback.py"))


def user_command(command):
    """A user's shell command, run as it is written by ``sh`` on the host."""
    return Step("user_command", (command,))


def tail_logs(roles, lines):
    """Print the last *lines* of the logs of *roles* (controller, jupyter, engine)."""
    return Step("tail_logs", (int(lines), *roles))


def facts(port=None, gpus=None, engines=None):
    """Report the host's facts (see ``tasks/remote/facts.sh``); with *port*, who holds it;
    with *gpus* and *engines* (the inventory's), the GPUs it names and how many engines
    would start."""
    return Step("facts", (port or "", gpus or "", engines or ""), program("versions.py"))


def probe(settings, expected=None, wait=0.0, shutdown=(), jupyter=True, controller=True,
          started=False, known_orphans=()):
    """
    Ask the controller, through ipyparallel's own `Client` on the master, for engines.

    See ``tasks/remote/probe.py``: with *expected* (``{label: count}``) and *wait*
    seconds it waits for those counts, or for an orphan not in *known_orphans*; with *shutdown* (labels) it first shuts those
    engines down; with *jupyter* it checks (and waits) that Jupyter answers, *started*
    saying that it was just started. Reports ``probe=``.
    """
    arguments = json.dumps({"name": settings.cluster_name, "profile": settings.ipp_profile,
                            "port": settings.jupyter_port, "expected": expected or {},
                            "wait": wait, "shutdown": list(shutdown), "jupyter": jupyter,
                            "controller": controller, "started": started,
                            "known_orphans": list(known_orphans)})
    return Step("probe", (arguments,), programs("probe.py", "ipp_screens.py", "loopback.py"))
