"""
End to end: the shipped inventory brings a whole cluster up on this machine, no SSH.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PROJECT, fab


def tagged_processes(tag):
    """The pids of live processes that carry IPP_CLUSTER_TAG=<tag>/..."""
    pids = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as environ:
                if any(e.startswith(f"IPP_CLUSTER_TAG={tag}/".encode()) for e in environ.read().split(b"\0")):
                    pids.append(int(path.split("/")[2]))
        except OSError:
            pass
    return pids


def local_screens():
    out = subprocess.run(["screen", "-ls"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("\t")]


@pytest.mark.skipif(not shutil.which("screen"), reason="needs screen (apt-get install screen)")
def test_shipped_inventory_brings_a_local_cluster_up_and_down():
    inventory = str(PROJECT / "inventory")
    try:
        up = fab("cluster.up", inventory=inventory)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Jupyter: http://127.0.0.1:8888/?token=" in up.stdout
        code = ("import ipyparallel as ipp, json, os\n"
                "c = ipp.Client(timeout=20)\n"
                "print(json.dumps(c[:].apply_sync(os.cpu_count)))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        cores = json.loads(out.stdout.strip().splitlines()[-1])
        assert len(cores) == os.cpu_count() and set(cores) == {os.cpu_count()}
        status = fab("cluster.status", inventory=inventory)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        down = fab("cluster.down", inventory=inventory)
    assert down.returncode == 0, down.stdout + down.stderr
    assert tagged_processes("ipp") == []
    assert [s for s in local_screens() if s.split(".", 1)[1].startswith("ipp-")] == []
