"""
Unit tests of the nanny of the controller and Jupyter (``tasks/remote/shared/nanny.py``) with
real processes standing in for them: restarts with back-off, giving up, and a stop that
is never undone; and of ``process_tree.py``. Its waits are shortened; nothing else is
changed. (The engines' supervisor, which follows the same rules: tests/test_supervisor.py.)
"""

import re
import select
import signal
import subprocess
import sys

import psutil
import pytest

from tasks.remote.shared import nanny
from tasks.remote.shared import process_tree
from tests import shipped
from tests.waiting import wait_until

#: Stand-ins for the programs: each writes its pid and its last argument to a file, then...
STAND_IN = "import os, sys; open(sys.argv[1], 'a').write(f'{os.getpid()} {sys.argv[-1]}\\n'); "
CRASH = STAND_IN + "os._exit(3)"
SLEEP = STAND_IN + "import time; time.sleep(60)"


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(nanny, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(nanny, "POLL", 0.02)
    monkeypatch.setattr(nanny, "WATCH", 0.02)


def keeper(tmp_path, program, role="controller"):
    options = {"role": role, "marker": str(tmp_path / "gaveup")}
    return nanny.Nanny(options, [sys.executable, "-c", program, str(tmp_path / "starts")])


def starts(tmp_path):
    path = tmp_path / "starts"
    return path.read_text().splitlines() if path.exists() else []


def test_the_tree_is_the_process_and_everything_it_started():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen(['sleep', '30']); print(flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        parent.stdout.readline()
        tree = process_tree.tree(parent.pid)
        assert tree[0].pid == parent.pid and len(tree) == 2
        # Popen returns once exec has begun: until the kernel has set the new program's
        # arguments (a loaded machine widens that moment), its cmdline reads empty
        wait_until(lambda: tree[1].cmdline(), 10, "the child's command line")
        assert tree[1].cmdline() == ["sleep", "30"]
        assert process_tree.resident(tree) > process_tree.resident(tree[:1]) > 0
    finally:
        parent.kill()
        parent.wait()
        tree[1].kill()
        tree[1].wait()
    assert not psutil.pid_exists(tree[1].pid)
    assert process_tree.resident(tree) == 0  # processes that are gone count nothing
    assert process_tree.tree(parent.pid) == []


def test_a_wait_whose_deadline_passes_between_two_looks_ends(tmp_path, monkeypatch):
    times = [0.0, 0.0]  # the deadline (1 s) is set, then checked; then a busy machine moves on
    slept = []

    def clock():
        return times.pop(0) if times else 5.0
    runner = keeper(tmp_path, SLEEP)
    monkeypatch.setattr(nanny.time, "monotonic", clock)
    monkeypatch.setattr(nanny.time, "sleep", slept.append)
    runner.wait(1.0)
    monkeypatch.undo()
    assert slept == [0.0] and not times  # no negative sleep (it crashed on one), then it ended


def as_on_a_host(folder, *changes):
    """Unpack the programs of the master into *folder*, as start_master.sh unpacks them into
    the run directory, each (old, new) text of *changes* changed in the nanny; the command
    line that runs the nanny there."""
    package = shipped.unpack("start_master", folder, [("shared/nanny.py", old, new) for old, new in changes])
    return shipped.argv(package, "shared.nanny")


def test_a_stop_during_the_back_off_wait_starts_nothing_more(tmp_path):
    # as the hosts run it, with a first wait of 5 s
    script = as_on_a_host(tmp_path, ("BACKOFF_FIRST, BACKOFF_MAX = 1.0", "BACKOFF_FIRST, BACKOFF_MAX = 5.0"),
                          ("FIRST_RUN = 30.0", "FIRST_RUN = 0.0"))
    process = subprocess.Popen([*script, "controller", str(tmp_path / "gaveup"),
                                "--", sys.executable, "-c", CRASH, str(tmp_path / "starts")],
                               stdout=subprocess.PIPE, text=True)
    assert "restart:" in _line(process, timeout=30)  # at once the first time
    assert "restart:" in _line(process, timeout=30)  # now waiting 5 s
    process.send_signal(signal.SIGHUP)  # what screen sends when its session is quit
    assert process.wait(timeout=4) == 0  # within the wait: it did not wait it out
    assert len(starts(tmp_path)) == 2  # and, ended, it can start nothing more


def _line(process, timeout):
    """The next line of *process*'s stdout, or '' when none comes within *timeout* s."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def test_auto_shares_the_hosts_memory_among_its_engines(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:  1 kB\n")
    assert nanny.memory_limit("auto", 4, meminfo) == 16384000 * 1024 // 4
    assert nanny.memory_limit(str(1 << 30), 4) == 1 << 30
    assert nanny.memory_limit("", 4) is None


#: A stand-in controller: writes its pid and last argument, leaves a child of its own in
#: a session of its own (as the controller leaves its scheduler processes when killed),
#: writes that child's pid, then crashes.
LEAVER = STAND_IN + ("import subprocess; child = subprocess.Popen(['sleep', '60'], "
                     "start_new_session=True); open(sys.argv[1] + '.child', 'a')"
                     ".write(f'{child.pid}\\n'); os._exit(3)")


def test_the_controller_starts_again_at_once_with_restore_and_nothing_it_left(tmp_path):
    # run as the hosts run it: a subreaper of its own, its first start taken as one that
    # ran (a first start that fails at once is given up)
    script = as_on_a_host(tmp_path, ("BACKOFF_FIRST, BACKOFF_MAX = 1.0", "BACKOFF_FIRST, BACKOFF_MAX = 0.1"),
                          ("FIRST_RUN = 30.0", "FIRST_RUN = 0.0"))
    process = subprocess.run([*script, "controller", str(tmp_path / "gaveup"),
                              "--", sys.executable, "-c", LEAVER, str(tmp_path / "starts")],
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 1
    lines = starts(tmp_path)
    assert len(lines) == nanny.GIVE_UP_AFTER + 1
    assert lines[0].split()[1] == str(tmp_path / "starts")  # the first start: a new controller
    assert all(line.split()[1] == "--restore" for line in lines[1:])  # then: restore it
    assert ": restart: the controller ended (exit code 3); starting it again now" in process.stdout
    assert "starting it again in 0.1 s" in process.stdout  # then the back-off
    assert (tmp_path / "gaveup").read_text() == (
        "gave up: the controller ended 6 times in 5 min, the last time: exit code 3\n")
    assert "; fab cluster.up starts it again" in process.stdout
    left = [int(pid) for pid in (tmp_path / "starts.child").read_text().split()]
    assert len(left) == 6 and not any(psutil.pid_exists(pid) for pid in left)


def test_a_bad_command_line_says_how_to_call_it(tmp_path):
    process = subprocess.run(shipped.argv(shipped.unpack("start_master", tmp_path), "shared.nanny", "engine", "node01"),
                             capture_output=True, text=True, timeout=30)
    assert process.returncode == 1 and process.stderr.startswith("usage: python RUN_DIR/ipp_remote shared.nanny controller|jupyter")


def test_jupyter_that_ends_at_its_first_start_is_given_up_at_once(tmp_path, capsys):
    options = {"role": "jupyter", "marker": str(tmp_path / "gaveup")}
    assert nanny.Nanny(options, [sys.executable, "-c", CRASH, str(tmp_path / "starts")]).run() == 1
    assert len(starts(tmp_path)) == 1  # a port taken: starting it again would not mend it
    assert re.fullmatch(r"gave up: Jupyter ended at its first start, after [0-9.]+ s \(exit code 3\):"
                        r" not a crash to mend\n", (tmp_path / "gaveup").read_text())
    assert "; fab cluster.up starts it again" in capsys.readouterr().out


def test_an_end_is_told_by_its_exit_code_or_its_signal():
    assert nanny.describe(3) == "exit code 3"
    assert nanny.describe(-9) == "signal 9 (SIGKILL)"
    assert nanny.describe(-int(signal.SIGRTMIN + 6)) == f"signal {int(signal.SIGRTMIN + 6)}"  # no name


def test_one_restart_policy_the_controller_at_once_first_an_engine_backing_off_from_its_first():
    """`nanny.Restarts`, for the nanny and the engines alike (first wait: 0.05 s here)."""
    controller, engine = nanny.Restarts("the controller", at_once=1), nanny.Restarts("the engine")
    assert [controller.crashed(float(t)) for t in range(7)] == [0.0, 0.05, 0.1, 0.2, 0.4, None, None]
    assert [engine.crashed(float(t)) for t in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, None]
    assert engine.give_up_line("exit code 3") == (
        "gave up: the engine ended 6 times in 5 min, the last time: exit code 3")
    assert controller.restart_line("exit code 1", 0.0) == (
        "restart: the controller ended (exit code 1); starting it again now")
    assert engine.crashed(5.0 + nanny.WINDOW) == 0.05  # the others left the window
    engine.forget()
    assert engine.crashed(6.0 + nanny.WINDOW) == 0.05 and len(engine.crashes) == 1
