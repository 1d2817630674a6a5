"""
Unit tests of ``tasks/remote/ipp_cluster.py``, the module every IPython kernel of the
master's Jupyter loads: with a known ipyparallel, ``ipp.Client`` gets sockets with lasting
routing ids and the cluster's profile; with another, it is left as it is and its first
client says so in one line. Each runs in a Python of its own, as a kernel loads the
module; the last starts a real kernel from the kernel specs it changed. The end-to-end test
(a map in flight at a controller crash, from a kernel of the master's Jupyter) is in
``tests/test_e2e_controller_healing.py``.
"""

import os
import subprocess
import sys

from tests.conftest import PROJECT

REMOTE = str(PROJECT / "tasks" / "remote")
PREAMBLE = f"import sys; sys.path.insert(0, {REMOTE!r})\n"
#: ipyparallel's own __init__ replaced by one that records what it was given.
RECORDING = """
import ipyparallel as ipp, zmq, ipp_cluster
seen = {}
def record(self, *args, **kwargs):
    seen.clear()
    seen.update(kwargs, args=args)
ipp.Client.__init__ = record
"""


def run(code, **env):
    done = subprocess.run([sys.executable, "-c", PREAMBLE + RECORDING + code], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, **env))
    assert done.returncode == 0, done.stderr
    return done


def test_a_known_ipyparallel_gets_lasting_routing_ids_and_the_clusters_profile():
    code = """
assert ipp_cluster.install() and ipp_cluster.install()  # twice: wrapped once
ipp.Client(timeout=5)
context = seen["context"]
print(seen["profile"], type(context).__name__, context.socket(zmq.DEALER).routing_id[:12])
ipp.Client("/some/ipcontroller-client.json")
print("profile" in seen, seen["args"], seen["context"] is context)  # one context per process
"""
    out = run(code, IPP_PROFILE="lab").stdout.splitlines()
    assert out == ["lab LastingContext b'ipp-cluster-'",
                   "False ('/some/ipcontroller-client.json',) True"]  # a connection named: no profile


def test_an_unknown_ipyparallel_is_left_as_it_is_and_its_first_client_says_so():
    code = """
ipp.__version__ = "10.0.0"
print(ipp_cluster.install())
ipp.Client(timeout=5)
ipp.Client(timeout=5)
print("context" in seen, "profile" in seen)
"""
    done = run(code, IPP_PROFILE="lab")
    assert done.stdout.split() == ["False", "False", "False"]
    assert done.stderr.splitlines() == [  # once
        "ipp_cluster: ipyparallel 10.0.0 is not a version this cluster knows (9.x): ipp.Client()"
        " is ipyparallel's own, and a task in flight at a controller restart may never end"]


def test_every_ipython_kernel_of_the_masters_jupyter_loads_it():
    code = """
from types import SimpleNamespace
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
import ipp_cluster
specs = KernelSpecManager()
ipp_cluster._load_jupyter_server_extension(SimpleNamespace(kernel_spec_manager=specs))  # as Jupyter does
manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
manager.start_kernel()
kernel = manager.client()
kernel.start_channels()
kernel.wait_for_ready(timeout=60)
said = []
kernel.execute_interactive("import ipyparallel as ipp; print(getattr(ipp.Client.__init__, 'ipp_cluster', 0))",
                           timeout=60, output_hook=lambda m: said.append(m["content"].get("text", "")))
print(manager.kernel_spec.argv[-1], "".join(said).strip())
kernel.stop_channels()
manager.shutdown_kernel(now=True)
"""
    done = subprocess.run([sys.executable, "-c", PREAMBLE + code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=REMOTE))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--IPKernelApp.extra_extensions=ipp_cluster", "True"]
