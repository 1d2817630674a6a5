"""
Unit tests of ``tasks/remote/ipp_cluster.py``, the module every IPython kernel of the
master's Jupyter and every Python of the cluster's environment load: with a known
ipyparallel, ``ipp.Client`` gets sockets with lasting routing ids and the cluster's profile;
with another, it is left as it is and its first client says so in one line. Each runs in a
Python of its own; one starts a real kernel from the kernel specs it changed, in a folder
that holds another ``ipp_cluster.py``, one loads the hook as site does. The end-to-end tests
(a map in flight at a controller crash, from a kernel of the master's Jupyter and from a
script) are in ``tests/test_e2e_controller_healing.py``.
"""

import json
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


def test_every_ipython_kernel_of_the_masters_jupyter_loads_it_by_its_path_not_by_name(tmp_path):
    """The kernel starts in a notebook folder that holds another ``ipp_cluster.py`` (someone
    else's, in a shared folder), from a kernel spec that sets its own PYTHONPATH (as a
    site's may): that one never runs; this one does, and is the notebook's ``ipp_cluster``."""
    kernels = tmp_path / "kernels" / "site"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (site)", "language": "python", "env": {"PYTHONPATH": "/opt/site-lib"}}))
    folder = tmp_path / "shared"
    folder.mkdir()
    planted = tmp_path / "planted-ran"
    (folder / "ipp_cluster.py").write_text(f"open({str(planted)!r}, 'w').close()\n"
                                            "def load_ipython_extension(shell): pass\n")
    code = f"""
from types import SimpleNamespace
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
import ipp_cluster
specs = KernelSpecManager(kernel_dirs=[{str(kernels.parent)!r}])
ipp_cluster._load_jupyter_server_extension(SimpleNamespace(kernel_spec_manager=specs))  # as Jupyter does
manager = KernelManager(kernel_name="site", kernel_spec_manager=specs)
manager.start_kernel(cwd={str(folder)!r})
kernel = manager.client()
kernel.start_channels()
kernel.wait_for_ready(timeout=60)
said = []
kernel.execute_interactive("import ipyparallel as ipp, ipp_cluster, os; print(getattr(ipp.Client.__init__,"
                           " 'ipp_cluster', 0), ipp_cluster.__file__ == {REMOTE + "/ipp_cluster.py"!r}, os.getcwd(),"
                           " sorted(n for n in dir() if n.startswith('_ipp')))",
                           timeout=60, output_hook=lambda m: said.append(m["content"].get("text", "")))
print(manager.kernel_spec.argv[-1], "".join(said).strip())
kernel.stop_channels()
manager.shutdown_kernel(now=True)
"""
    done = subprocess.run([sys.executable, "-c", PREAMBLE + "import ipp_cluster\n" + code],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REMOTE))
    assert done.returncode == 0, done.stderr
    assert not planted.exists(), done.stdout
    assert done.stdout.split() == [f"--IPKernelApp.exec_files={REMOTE}/ipp_cluster_kernel.py",
                                   "True", "True", str(folder), "[]"]


def test_a_python_with_the_hook_imports_nothing_until_ipyparallel_is_imported(tmp_path):
    """``ipp_cluster.pth`` in a site-packages folder (as ``cluster.install`` puts it): a
    Python that never imports ipyparallel imports neither it nor ZeroMQ; one that does
    has ipyparallel's `Client` made this module's at its import (see the first test)."""
    site = tmp_path / "site-packages"
    site.mkdir()
    for name in ("ipp_cluster.py", "ipp_cluster.pth"):
        (site / name).write_text((PROJECT / "tasks" / "remote" / name).read_text())
    code = f"""
import site, sys
site.addsitedir({str(site)!r})  # what site does at a start with the environment's folder
print("ipp_cluster" in sys.modules, "zmq" in sys.modules, "ipyparallel" in sys.modules)
import ipyparallel as ipp
print(getattr(ipp.Client.__init__, "ipp_cluster", False))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False", "True"]
    assert done.stderr == ""
