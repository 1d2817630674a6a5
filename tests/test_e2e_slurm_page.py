"""
End to end: the Slurm page's own example (docs/slurm.md), read from the page and brought up as
written on a test Slurm that is the site it describes (`tests.slurmhosts`): the login node, a
partition ``cpu`` of four nodes with the feature ``avx2``, a partition ``gpu`` of two nodes
with two GPUs each, and Lmod's environment modules with the modules the page loads.

Only what a reader changes for their own site changes: the login node's name (its address
here) and CLUSTER_ENV (this test's Python), and cluster.env gets what the page leaves to its
defaults, for a test among others: where SSH finds the hosts' keys (KNOWN_HOSTS), the cluster's
name, profile and Jupyter port.
"""

import json
import os
import re
import sys

import psutil
import pytest

from tests import sshhosts
from tests.conftest import engines_per_host, fab, leftovers, with_client
from tests.slurmhosts import FakeSlurm, why_not_available
from tests.test_docs import DOCS, fenced_blocks

#: The site's hosts: 127.0.2.31 (the login node) to .37, never the other tests' hosts.
FIRST = 31
CPU_NODES, GPU_NODES = (2, 3, 4, 5), (6, 7)

#: The site's modules (environment modules, Lmod's, in its /etc/lmod/modules): those the page
#: loads. The cluster's Python itself is CLUSTER_ENV's; Lmod names what was loaded in
#: LOADEDMODULES, which every program the cluster starts then has.
MODULES = {"python/3.11.lua": 'whatis("Python 3.11")\n', "cuda/12.2.lua": 'whatis("CUDA 12.2")\n'}
LMOD = "/etc/lmod/modules"


def page_example():
    """The page's first inventory (its ``ini`` block) and its cluster.env (empty: none), as written."""
    blocks = fenced_blocks(DOCS / "slurm.md")
    hosts = next(text for language, text in blocks if language == "ini")
    settings = next((text for _, text in blocks if text.startswith("# inventory/cluster.env")), "")
    return hosts, settings


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site's hosts (their modules laid over /etc/lmod/modules) and its Slurm."""
    reason = sshhosts.why_not_available() or why_not_available() or (
        None if os.path.isdir(LMOD) else f"no {LMOD}: install lmod (environment modules)")
    if reason:
        pytest.skip(reason)
    modules = tmp_path_factory.mktemp("modules")
    for name, text in MODULES.items():
        (modules / name).parent.mkdir(exist_ok=True)
        (modules / name).write_text(text)
    with sshhosts.FakeHosts(7, first=FIRST, gpus=2, overlays={LMOD: modules}) as hosts, \
            FakeSlurm(hosts, partitions={"cpu": CPU_NODES, "gpu": GPU_NODES}, max_time=1440,
                      features=dict.fromkeys(CPU_NODES, "avx2"), gpus=dict.fromkeys(GPU_NODES, 2)) as slurm:
        yield hosts, slurm


def loaded_modules(tag):
    """The LOADEDMODULES of the processes of this machine tagged *tag* (the controller's)."""
    found = set()
    for process in psutil.process_iter():
        try:
            environ = process.environ()
        except psutil.Error:
            continue
        if environ.get("IPP_CLUSTER_TAG") == tag:
            found.add(environ.get("LOADEDMODULES"))
    return found


def test_the_pages_example_comes_up_on_the_site_it_describes_and_goes_down(site, tmp_path):
    hosts, slurm = site
    inventory, settings = page_example()
    written = inventory.replace("login01.campus.edu", hosts.hosts[0].address)
    ours = re.sub(r"(?m)^CLUSTER_ENV=.*$", f"CLUSTER_ENV={sys.prefix}", settings)
    assert written.count(hosts.hosts[0].address) == 1 and ours.count(sys.prefix) == 1  # both were there
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "hosts").write_text(written)
    (folder / "cluster.env").write_text(ours + f"KNOWN_HOSTS={hosts.known_hosts}\nCLUSTER_NAME=slurmpage\n"
                                        "IPP_PROFILE=slurmpage\nJUPYTER_PORT=18958\n")

    def run(*args):
        return fab(*args, inventory=folder, key=hosts.client_key)
    try:
        check = run("cluster.check")  # Slurm judges both jobs as the page asks for them
        assert check.returncode == 0, check.stdout + check.stderr
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        rows = {row["host"]: row for row in json.loads(run("cluster.status", "--json").stdout)["hosts"]}
        assert [(rows[a]["job"]["state"], rows[a]["registered"], rows[a]["expected"])
                for a in ("cpu_alloc", "gpu_alloc")] == [("RUNNING", 8, 8), ("RUNNING", 4, 4)]
        # --exclusive: an engine per CPU of the cpu nodes; gpus=auto: one per GPU of the gpu nodes
        assert engines_per_host("slurmpage") == {host.name: 2 for host in hosts.hosts[1:]}
        # the page's modules: Python's on the login node (its controller) too, CUDA's on the GPU nodes
        assert loaded_modules("slurmpage/controller") == {"python/3.11"}
        code = ("def loaded():\n    import os, socket\n"
                "    return socket.gethostname(), os.environ.get('LOADEDMODULES')\n"
                "print(json.dumps(sorted(set(map(tuple, c[:].apply_sync(loaded))))))")
        names = [host.name for host in hosts.hosts]
        assert with_client(code, "slurmpage") == sorted(
            [[names[n - 1], "python/3.11"] for n in CPU_NODES]
            + [[names[n - 1], "python/3.11:cuda/12.2"] for n in GPU_NODES])
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert [job for job in slurm.jobs() if "|ipp-slurmpage-" in job] == []
    assert leftovers(hosts, range(1, 8)) == {}
