"""
Where the master is, decided in one place: a task gets its connections only in a
`tasks.context.Session`, whose inventory has the master where the controller and Jupyter
run (with ``slurm_master=yes``, the first node of the allocation's job, asked of Slurm once).
A task cannot talk to the login node's master by forgetting a call: there is none to make.
The master reached in a job's node, end to end, is in tests/test_e2e_slurm.py.
"""

import ast
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from tasks.context import EXIT, LOGIN_NODE, Session
from tasks.inventory.folder import load_inventory
from tasks.ssh.fleet import Fleet

TASKS = Path(__file__).resolve().parent.parent / "tasks"

#: What only the context may use: connections of its own, and the lookup of the master's job.
RESOLVERS = {"Fleet", "fleet", "master_job", "master_in_job", "on_its_master"}


def used_names(path):
    """Every name a module imports, reads or takes as an attribute (a session's ``.fleet``
    is not the context's ``fleet``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names |= {alias.name for alias in node.names} | set((node.module or "").split("."))
        elif isinstance(node, ast.Import):
            names |= {part for alias in node.names for part in alias.name.split(".")}
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and (
                node.attr != "fleet" or getattr(node.value, "id", "") == "context"):
            names.add(node.attr)
    return names


def test_no_task_opens_connections_or_looks_for_the_master_itself():
    modules = sorted(p for p in TASKS.glob("*.py") if p.name != "context.py")
    assert {"master.py", "engines.py", "cluster.py"} <= {p.name for p in modules}
    found = {p.name: sorted(used_names(p) & RESOLVERS) for p in modules}
    assert {name: used for name, used in found.items() if used} == {}


class CountingFleet(Fleet):
    """A real `Fleet` that counts its round trips."""

    trips = 0

    def run(self, scripts, timeout, out_stream=None):
        self.trips += 1
        return super().run(scripts, timeout, out_stream)


def inventory(folder, master_in_job):
    """A login node nothing answers on (127.0.0.1, port 1) and an allocation cpu_alloc,
    which runs the controller with *master_in_job*."""
    (folder / "hosts").write_text(
        "[master]\n127.0.0.1 ansible_port=1\n\n[engines:children]\ncpu_alloc\n\n[cpu_alloc]\n\n"
        f"[cpu_alloc:vars]\nslurm_nodes=2\nslurm_master={'yes' if master_in_job else 'no'}\n")
    return load_inventory(folder)


def test_without_the_job_a_session_exits_or_goes_on_at_the_login_node_as_told_asking_once(tmp_path):
    written = inventory(tmp_path, master_in_job=True)
    with Session(CountingFleet(written.settings), written) as cluster:  # EXIT unless told
        with pytest.raises(Exit) as exited:
            cluster.master
        assert exited.value.code == 1
        assert exited.value.message.startswith("error: cpu_alloc: cannot ask Slurm on 127.0.0.1: ")
        with pytest.raises(Exit):
            cluster.inventory
        assert cluster.fleet.trips == 1  # asked once, the answer kept
    with Session(CountingFleet(written.settings), written, if_no_job=LOGIN_NODE) as cluster:
        assert cluster.inventory is written and cluster.master == written.master
        assert cluster.written is written and cluster.fleet.trips == 1
    with pytest.raises(ValueError, match="if_no_job='maybe'"):
        Session(CountingFleet(written.settings), written, if_no_job="maybe")


def test_without_slurm_master_the_master_is_the_inventorys_and_slurm_is_not_asked(tmp_path):
    written = inventory(tmp_path, master_in_job=False)
    with Session(CountingFleet(written.settings), written, if_no_job=EXIT) as cluster:
        assert cluster.inventory is written and cluster.master == written.master
        assert cluster.fleet.trips == 0
