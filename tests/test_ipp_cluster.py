"""
Unit tests of ``tasks/remote/ipp_cluster.py``, the module every IPython kernel of the
master's Jupyter and every Python of the cluster's environment load: with a known
ipyparallel, ``ipp.Client`` gets sockets with lasting routing ids and the cluster's profile;
with another, it is left as it is and its first client says so in one line. Each runs in a
Python of its own, which imports the file under test (whatever hook this Python's
environment holds); two start a real kernel from the kernel specs it changed, in a folder
that holds another ``ipp_cluster.py`` (one with a user's own ``exec_files``), one starts a
new environment with the hook in its site-packages. The end-to-end tests
(a map in flight at a controller crash, from a kernel of the master's Jupyter and from a
script) are in ``tests/test_e2e_controller_healing.py``.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

REMOTE = str(PROJECT / "tasks" / "remote")
#: The file under test first on the path, and not a copy that an older hook of this Python's
#: environment (``install.sh``'s, before it linked its files) put under that name at its start.
PREAMBLE = f"import sys; sys.path.insert(0, {REMOTE!r}); sys.modules.pop('ipp_cluster', None)\n"
#: ipyparallel's own __init__ replaced by one that records what it was given; the module
#: imported is the file under test.
RECORDING = f"""
import ipyparallel as ipp, zmq, ipp_cluster
assert ipp_cluster.__file__ == {REMOTE + "/ipp_cluster.py"!r}, ipp_cluster.__file__
seen = {{}}
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


def kernel_says(tmp_path, code, **env):
    """Start an IPython kernel as the master's Jupyter does, from the kernel specs that
    `load_into_kernels` changed: a site's spec that sets its own PYTHONPATH (and *env*), in a
    notebook folder that holds another ``ipp_cluster.py`` (someone else's, in a shared
    folder); run *code* there. Returns the option the spec was given, what the code printed,
    and whether the other ``ipp_cluster.py`` ran."""
    kernels = tmp_path / "kernels" / "site"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (site)", "language": "python", "env": {"PYTHONPATH": "/opt/site-lib", **env}}))
    folder = tmp_path / "shared"
    folder.mkdir()
    planted = tmp_path / "planted-ran"
    (folder / "ipp_cluster.py").write_text(f"open({str(planted)!r}, 'w').close()\n"
                                            "def load_ipython_extension(shell): pass\n")
    program = f"""
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
kernel.execute_interactive({code!r}, timeout=60, output_hook=lambda m: said.append(m["content"].get("text", "")))
print(manager.kernel_spec.argv[-1])
print("".join(said).strip())
kernel.stop_channels()
manager.shutdown_kernel(now=True)
"""
    done = subprocess.run([sys.executable, "-c", PREAMBLE + program], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=REMOTE))
    assert done.returncode == 0, done.stderr
    option, said = done.stdout.split("\n", 1)
    return option, said.strip(), planted.exists()


def test_every_ipython_kernel_of_the_masters_jupyter_loads_it_by_its_path_not_by_name(tmp_path):
    """The other ``ipp_cluster.py`` never runs; the file under test does, is the notebook's
    ``ipp_cluster`` and made its ``ipp.Client`` (not a copy that a hook of the kernel's
    environment loaded at its start)."""
    option, said, planted_ran = kernel_says(tmp_path, (
        "import ipyparallel as ipp, ipp_cluster, os; init = ipp.Client.__init__;"
        " print(getattr(init, 'ipp_cluster', 0), ipp_cluster.__file__, init.__globals__['__file__'],"
        " os.getcwd(), sorted(n for n in dir() if n.startswith('_ipp')))"))
    assert not planted_ran, said
    assert option == f"--config={REMOTE}/ipp_cluster_kernel.py"
    assert said.split() == ["True", f"{REMOTE}/ipp_cluster.py", f"{REMOTE}/ipp_cluster.py",
                            str(tmp_path / "shared"), "[]"]


def test_a_users_own_kernel_start_files_still_run_beside_it(tmp_path):
    """A user's (or a site's) ``ipython_kernel_config.py`` that sets ``c.IPKernelApp.exec_files``:
    those files still run in each kernel of the master's Jupyter, and ipp_cluster is loaded too."""
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (tmp_path / "mine.py").write_text("users_own_start = 'ran'\n")
    (profile / "ipython_kernel_config.py").write_text(
        f"c.IPKernelApp.exec_files = [{str(tmp_path / 'mine.py')!r}]\n")
    _, said, _ = kernel_says(tmp_path, "import ipyparallel as ipp; print(globals().get('users_own_start'),"
                                       " getattr(ipp.Client.__init__, 'ipp_cluster', 0))",
                             IPYTHONDIR=str(tmp_path / "ipython"))
    assert said == "ran True"


def test_a_python_with_the_hook_imports_nothing_until_ipyparallel_is_imported(tmp_path):
    """``ipp_cluster.pth`` and ``ipp_cluster.py`` in the site-packages folder of a new
    environment (as ``cluster.install`` puts them), which sees this one's packages but not
    its ``.pth`` files (a hook that ``install.sh`` put here never runs): a Python that never
    imports ipyparallel imports neither it nor ZeroMQ, and leaves the name ``ipp_cluster``
    free (for a script's own, or the file under test); one that does has ipyparallel's
    `Client` made by that folder's ``ipp_cluster.py`` at its import (see the first test)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    python = str(tmp_path / "env" / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for name in ("ipp_cluster.py", "ipp_cluster.pth"):
        shutil.copy(PROJECT / "tasks" / "remote" / name, site)
    Path(site, "shared-packages.pth").write_text("".join(f"{p}\n" for p in sys.path if p.endswith("-packages")))
    code = """
import sys
print([name for name in ("ipp_cluster", "zmq", "ipyparallel") if name in sys.modules])
import ipyparallel as ipp
print(getattr(ipp.Client.__init__, "ipp_cluster", False), ipp.Client.__init__.__globals__["__file__"])
"""
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["[]", f"True {site}/ipp_cluster.py", ""]
    assert done.stderr == ""


def test_the_copy_loaded_last_makes_the_client(tmp_path):
    """A kernel of the master's Jupyter in the cluster's environment: the environment's hook
    loaded its copy at the start (perhaps an older one), the kernel loads the run folder's.
    The latter makes ipyparallel's `Client`, whether ipyparallel was imported before or after."""
    shutil.copy(PROJECT / "tasks" / "remote" / "ipp_cluster.py", tmp_path / "older.py")
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_ipp_cluster_hook", {str(tmp_path / "older.py")!r})
hook = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hook)
hook.install_when_imported()
import ipp_cluster
ipp_cluster.install_when_imported()
import ipyparallel as ipp
print(ipp.Client.__init__.__globals__["__file__"], ipp.Client.__init__.__wrapped__.__module__)
hook.install()  # the other way round: that copy's again
print(ipp.Client.__init__.__globals__["__file__"], ipp.Client.__init__.__wrapped__.__module__)
"""
    done = subprocess.run([sys.executable, "-c", PREAMBLE + code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{REMOTE}/ipp_cluster.py ipyparallel.client.client",
                                        f"{tmp_path}/older.py ipyparallel.client.client"]
