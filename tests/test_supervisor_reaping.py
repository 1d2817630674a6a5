"""
The bookkeeping of the engines' supervisor (``tasks/remote/engines/supervisor.py``) around what
it reaps, driven here in this process with stand-in engines (each a process of its own):
a pid is signalled only while the kernel keeps it for the process it was, that is until
its parent reaps it, so that a pid given to another process after the reap (any user's)
is never signalled. No SSH, no root.
"""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tasks.remote.engines import host_sample
from tasks.remote.shared import process_tree
from tasks.remote.engines import supervisor
from tests.waiting import wait_until

SLEEP = "import time; time.sleep(60)"
#: A stand-in engine that leaves a child in its process group (as a task may), writes the
#: child's pid, and ends.
LEAVE = ("import subprocess, sys; child = subprocess.Popen(['sleep', '60']); "
         "open(sys.argv[1], 'w').write(str(child.pid)); sys.exit(3)")


@pytest.fixture
def keeper(tmp_path):
    """A supervisor of one stand-in engine running *program* (with a file's path as its
    argument), which the test drives: nothing runs but what it calls."""
    made = []

    def make(program):
        options = {"run": str(tmp_path), "name": "sv", "label": "node01", "count": 1,
                   "restart": False, "limit": "", "devices": []}
        made.append(supervisor.Supervisor(options, [sys.executable, "-c", program, str(tmp_path / "left")]))
        return made[-1]
    yield make
    for one in made:
        for engine in one.engines.values():
            if engine.child:
                process_tree.signal_group(engine.child.pid, signal.SIGKILL)
        one.wait(lambda: any(e.child for e in one.engines.values()))
        one.leftovers.finish(everything=True)


def zombie(pid):
    """Whether *pid* ended and waits for its parent to reap it."""
    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def leader_state(pid):
    """The state letter of *pid* in /proc (``Z``: a zombie), or None once reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_nanny_once_reaped_is_forgotten_and_its_pid_never_signalled(keeper, monkeypatch):
    kept = keeper(SLEEP)
    engine = kept.engines[1]
    kept.start(engine)
    nanny = subprocess.Popen([sys.executable, "-c", "pass"])  # as Warm.serve forks one: our child
    engine.kernel_nanny = nanny.pid
    wait_until(lambda: zombie(nanny.pid), 30, "the nanny's end")
    kept.reap()  # the nanny is reaped: from now on its pid may be any process's
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # the kernel gives the nanny's pid to the stranger (here: every look-up of it does)
        alone = process_tree.alone
        monkeypatch.setattr(process_tree, "alone",
                            lambda pid: alone(stranger.pid if pid == nanny.pid else pid))
        process_tree.signal_group(engine.child.pid, signal.SIGKILL)  # then the engine ends
        wait_until(lambda: zombie(engine.child.pid), 30, "the engine's end")
        kept.reap()
        assert engine.child is None  # ended: what it left is to be ended...
        assert stranger.pid not in [process.pid for process in kept.leftovers.due]  # ...not the stranger
        assert engine.kernel_nanny is None  # forgotten at its reap
        kept.leftovers.finish(everything=True)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_an_engines_group_is_ended_while_its_leader_is_not_reaped(keeper, monkeypatch, tmp_path):
    kept = keeper(LEAVE)
    engine = kept.engines[1]
    kept.start(engine)
    leader = engine.child.pid
    seen = []  # the leader's state each time its group is listed
    group = process_tree.group
    monkeypatch.setattr(process_tree, "group", lambda pgid: seen.append(leader_state(leader)) or group(pgid))
    left = int(wait_until(lambda: (tmp_path / "left").read_text(), 30, "the engine's child"))
    wait_until(lambda: zombie(leader), 30, "the engine's end")
    kept.reap()
    assert seen == ["Z"]  # a zombie still holds its pid: the group is ours alone
    assert engine.child is None and leader_state(leader) is None  # reaped after
    wait_until(lambda: leader_state(left) in (None, "Z"), 30, "the end of what the engine left")


def test_the_gpu_query_once_reaped_is_never_signalled(keeper, monkeypatch):
    kept = keeper(SLEEP)
    query = subprocess.Popen(["true"])  # as GpuQuery.start spawns nvidia-smi: our child
    read, write = os.pipe()  # its answer, still open (a child of its own may hold the pipe)
    kept.sampler.gpus.pid, kept.sampler.gpus.fd, kept.sampler.gpus.began = query.pid, read, 0.0
    wait_until(lambda: zombie(query.pid), 30, "the query's end")
    kept.reap()  # from now on its pid may be any process's
    signalled = []
    monkeypatch.setattr(host_sample.os, "kill", lambda pid, sig: signalled.append(pid))
    kept.sampler.gpus.overdue()  # its answer is late: it is ended
    monkeypatch.undo()
    os.close(write)
    assert query.pid not in signalled and kept.sampler.gpus.fd is None
