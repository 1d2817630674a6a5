"""
The files a host's Python reads to start N engines (part of ``python -m bench --scale``):
the engines' supervisor (``tasks/remote/engines/supervisor.py``) run under ``strace -f`` with a
local controller, until its N engines registered, once forking its engines (as it does)
and once starting each as a process of its own (as with an ipyparallel it does not know,
and as every engine started before it). Counted: the ``openat`` calls that opened a
``.py``, ``.pyc`` or ``.so`` file, by every process of the supervisor. On a cluster's
shared file system, each is a round trip to the file server, times every engine host.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests import shipped

from . import methods

COUNTS = (4, 16)
OPENED = re.compile(r'openat\([^"]*"([^"]+\.(?:py|pyc|so(?:\.[0-9.]+)?))"')
#: The supervisor, with an ipyparallel whose version it does not know: each engine a process.
AS_PROCESSES = ("-c", "import runpy, sys, ipyparallel; ipyparallel.__version__ = '99.0.0'; "
                      "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
PROFILE = f"{methods.NAME}-files"


def files_read(folder, engines, forked, client):
    """The .py, .pyc and .so files opened to start *engines* engines (see the module)."""
    run = folder / f"files-{engines}-{'forked' if forked else 'processes'}"
    run.mkdir(parents=True, exist_ok=True)
    package = shipped.unpack("start_engines", run)
    trace = run / "strace.txt"
    ipengine = str(Path(sys.executable).parent / "ipengine")
    python = (sys.executable, *(() if forked else AS_PROCESSES))
    command = ["strace", "-f", "-qq", "-e", "trace=openat", "-e", "status=successful", "-o",
               str(trace), *shipped.argv(package, "engines.supervisor", run, methods.NAME, "bench",
                                         engines, "yes", "", "", "--", ipengine,
                                         f"--profile={PROFILE}", "--log-level=ERROR", python=python)]
    tracer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client.wait_for_engines(engines, timeout=600)
    finally:
        for child in psutil.Process(tracer.pid).children():
            child.send_signal(signal.SIGHUP)  # the supervisor: what screen sends at a stop
        tracer.wait(timeout=120)
    deadline = time.monotonic() + 60
    while client.ids and time.monotonic() < deadline:
        time.sleep(0.2)
    return sum(1 for line in trace.read_text(errors="replace").splitlines() if OPENED.search(line))


def measure(folder, say):
    """``{"forked": {N: files}, "processes": {N: files}}``, or a reason it was not measured."""
    if not shutil.which("strace"):
        return "strace is not installed (apt-get install strace)"
    import ipyparallel as ipp

    before = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(folder / "files-ipython")
    cluster = ipp.Cluster(profile=PROFILE, cluster_id="", n=0)
    cluster.start_controller_sync()
    client = cluster.connect_client_sync()
    found = {"forked": {}, "processes": {}}
    try:
        for engines in COUNTS:
            for way, forked in (("forked", True), ("processes", False)):
                found[way][engines] = files_read(folder, engines, forked, client)
                say(f"files read to start {engines} engines, {way}: {found[way][engines]}")
    finally:
        client.close()
        cluster.stop_controller_sync()
        if before is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = before
        methods.wait_until_clean("the files-read measurement")
    return found


def table(found):
    """The Markdown table of `measure`'s counts (or the line saying why there are none)."""
    if isinstance(found, str):
        return f"Files read to start engines: not measured ({found})."
    lines = ["| engines on the host | files read (.py, .pyc, .so), forked by the supervisor |"
             " the same, a process each |", "|---|---|---|"]
    for engines in sorted(found["forked"], key=int):
        lines.append(f"| {engines} | {found['forked'][engines]} | {found['processes'][engines]} |")
    return "\n".join(lines)
