"""
Unit tests of ``tasks/remote/ipp_cluster.py``, the module every kernel of the master's
Jupyter loads: with a known ipyparallel, ``ipp.Client`` gets sockets with lasting routing
ids and the cluster's profile; with another, it is left alone and one line says so. Each
runs in a Python of its own, as a kernel would load the module. The end-to-end test
(a map in flight at a controller crash, from a kernel of the master's Jupyter) is in
``tests/test_e2e_controller_healing.py``.
"""

import subprocess
import sys

from tests.conftest import PROJECT

PREAMBLE = f"import sys; sys.path.insert(0, {str(PROJECT / 'tasks' / 'remote')!r})\n"


def run(code, **env):
    done = subprocess.run([sys.executable, "-c", PREAMBLE + code], capture_output=True,
                          text=True, timeout=60, env=env or None)
    assert done.returncode == 0, done.stderr
    return done


def test_a_known_ipyparallel_gets_lasting_routing_ids_and_the_clusters_profile(tmp_path):
    code = """
import ipyparallel as ipp, zmq, ipp_cluster
seen = {}
def record(self, *args, **kwargs):
    seen.update(kwargs, args=args)
    raise SystemExit
ipp.Client.__init__ = record
assert ipp_cluster.install() and ipp_cluster.install()  # twice: wrapped once
try:
    ipp.Client(timeout=5)
except SystemExit:
    pass
context = seen["context"]
socket = context.socket(zmq.DEALER)
print(seen["profile"], type(context).__name__, socket.routing_id.startswith(b"ipp-cluster-"))
seen.clear()
try:
    ipp.Client("/some/ipcontroller-client.json")
except SystemExit:
    pass
print("profile" in seen, seen["args"], type(seen["context"]).__name__)
"""
    out = run(code, IPP_PROFILE="lab", PATH="/usr/bin:/bin", HOME=str(tmp_path)).stdout.split("\n")
    assert out[0] == "lab LastingContext True"
    # a connection named: no profile, and still the lasting routing ids
    assert out[1] == "False ('/some/ipcontroller-client.json',) LastingContext"


def test_an_unknown_ipyparallel_is_left_alone_and_one_line_says_so():
    code = """
import ipyparallel as ipp, ipp_cluster
ipp.__version__ = "10.0.0"
before = ipp.Client.__init__
print(ipp_cluster.install(), ipp.Client.__init__ is before)
"""
    done = run(code)
    assert done.stdout.strip() == "False True"
    assert done.stderr.strip().splitlines() == [
        "ipp_cluster: ipyparallel 10.0.0 is not a version this cluster knows (9.x): ipp.Client()"
        " is ipyparallel's own, and a task in flight at a controller restart may never end;"
        " use ipp_cluster.Client()"]
