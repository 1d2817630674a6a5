"""
Unit tests of the engines' supervisor (``tasks/remote/engines/supervisor.py``) as a host runs it,
in a run directory of its own, with real processes standing in for ipengine (a stand-in
is no ipengine of this Python, so each starts as a process): restarts with back-off and
giving up, the memory limit, renewals and starts asked for in its requests file, waves,
GPUs, its state file, and a stop that ends everything. Its back-off is shortened; nothing
else is changed.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests import shipped
from tests.waiting import wait_until

#: Stand-ins for ipengine: each writes its pid, its GPU, the session it registers as (read
#: from its ``--config=`` file as ipengine reads it), when it began, the file's mode and its
#: whole command line to a file, then...
STAND_IN = ("import os, sys, time; began = time.time(); "
            "from traitlets.config.loader import JSONFileConfigLoader; "
            "config = next(a for a in sys.argv if a.startswith('--config='))[len('--config='):]; "
            "session = JSONFileConfigLoader(config).load_config().Session.session; "
            "open(sys.argv[1], 'a').write(f'{os.getpid()} {os.environ.get(\"CUDA_VISIBLE_DEVICES\")} "
            "{session} {began} {os.stat(config).st_mode & 0o777:o} {chr(0).join(sys.argv)!r}\\n'); ")
CRASH = STAND_IN + "os._exit(3)"
SLEEP = STAND_IN + "import time; time.sleep(60)"
GREEDY = STAND_IN + "import time; hog = [bytearray(20 << 20) for _ in range(10)]; time.sleep(60)"
#: ... or starts a child of its own (as a task would), writes its pid, and sleeps.
PARENT = STAND_IN + ("import subprocess, time; child = subprocess.Popen(['sleep', '60']); "
                     "open(sys.argv[1] + '.child', 'a').write(f'{child.pid}\\n'); time.sleep(60)")
GREEDY_CHILD = STAND_IN + ("import subprocess, time; subprocess.Popen([sys.executable, '-c', "
                           "'import time; hog = [bytearray(20 << 20) for _ in range(10)]; "
                           "time.sleep(60)']); time.sleep(60)")
NAME = "sv"


class Supervised:
    """A supervisor started as start_engines.sh starts one, in *folder*."""

    def __init__(self, folder, program, count=1, restart="yes", limit="", devices="",
                 first_backoff="0.05", engine=None, python=(sys.executable,), changes=()):
        """*program*: a stand-in's; *engine*: ipengine's command line instead; *python*:
        what runs supervisor.py; *changes*: more (old, new) texts of its files."""
        self.folder = folder
        package = shipped.unpack("start_engines", folder, (
            ("shared/nanny.py", "BACKOFF_FIRST, BACKOFF_MAX = 1.0", f"BACKOFF_FIRST, BACKOFF_MAX = {first_backoff}"),
            ("engines/supervisor.py", "RESCAN = 10.0", "RESCAN = 0.1"),
            *((None, old, new) for old, new in changes)))
        self.process = subprocess.Popen(
            shipped.argv(package, "engines.supervisor", folder, NAME, "node01", count, restart, limit,
                         devices, "--",
                         *(engine or [sys.executable, "-c", program, str(folder / "starts")]),
                         python=python),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def starts(self):
        path = self.folder / "starts"
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

    def state(self):
        try:
            return json.loads((self.folder / f"{NAME}-engines.json").read_text())
        except (OSError, ValueError):
            return {"engines": {}}

    def log(self, number=1):
        path = self.folder / f"{NAME}-engine-{number}.log"
        return path.read_text() if path.exists() else ""

    def said(self):
        """The supervisor's own line about how it starts engines, in its output."""
        while not (line := self.process.stdout.readline()).startswith("=== supervisor ") and line:
            pass
        return line

    def ask(self, line):
        with open(self.folder / f"{NAME}-engines.requests", "a") as requests:
            requests.write(line + "\n")

    def stop(self):
        self.process.send_signal(signal.SIGHUP)  # what screen sends when its session is quit
        return self.process.wait(timeout=30)


@pytest.fixture
def supervise(tmp_path):
    started = []

    def start(*args, **kwargs):
        started.append(Supervised(tmp_path, *args, **kwargs))
        return started[-1]
    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.kill()
            one.process.wait()


def gone(pid):
    """Whether the process *pid* ended (a zombie, ended but not reaped yet, has)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_crashing_engine_is_started_again_with_back_off_then_given_up(supervise, tmp_path):
    keeper = supervise(CRASH)
    began = time.monotonic()
    wait_until(lambda: keeper.state()["engines"].get("1", {}).get("state") == "gaveup", 30,
               "the engine given up")
    took = time.monotonic() - began
    starts = keeper.starts()
    assert len(starts) == 6
    assert all(re.fullmatch(r"node01/1/[0-9]+/[0-9a-f]{16}", start[2]) for start in starts)
    assert len({start[2] for start in starts}) == 6  # a new session id each start
    assert all(start[4] == "600" and start[2] not in " ".join(start[5:]) for start in starts)  # in no argv
    assert not list(tmp_path.glob("*.session.json"))  # each start's, gone at its end
    assert took >= 0.05 * (1 + 2 + 4 + 8 + 16)  # the back-off: 1, 2, 4, 8, 16 times the first
    assert (tmp_path / f"{NAME}-engine-1.gaveup").read_text() == (
        "gave up: the engine ended 6 times in 5 min, the last time: exit code 3\n")
    log = keeper.log()
    assert log.count(": restart: the engine ended (exit code 3); starting it again in ") == 5
    assert log.count(f": {NAME}-engine-1\n") == 1  # the launch line, once: restarts are no new launch
    assert "fab engines.restart starts it again" in log
    assert keeper.process.poll() is None  # the supervisor keeps going for the others
    assert keeper.stop() == 0


def test_with_engine_restart_no_a_dead_engine_stays_dead_until_asked(supervise):
    keeper = supervise(CRASH, restart="no")
    wait_until(lambda: keeper.state()["engines"].get("1", {}).get("state") == "stopped", 30,
               "the engine stopped")
    assert len(keeper.starts()) == 1
    assert "ENGINE_RESTART=no: it stays stopped" in keeper.log()
    keeper.ask("start")  # what engines.start asks of a supervisor that runs
    wait_until(lambda: len(keeper.starts()) == 2, 30, "its second start")
    assert keeper.stop() == 0


def test_an_engine_past_its_memory_limit_is_ended_and_started_again(supervise):
    keeper = supervise(GREEDY, limit=str(100 << 20))
    wait_until(lambda: len(keeper.starts()) >= 2, 30, "its start after the limit")
    log = keeper.log()
    assert "over MEMORY_LIMIT (100 MiB): ending it" in log
    assert "restart: the engine ended (passed MEMORY_LIMIT (100 MiB) by " in log
    assert keeper.stop() == 0


def test_the_memory_of_what_the_engine_started_counts_too(supervise):
    keeper = supervise(GREEDY_CHILD, limit=str(100 << 20))
    wait_until(lambda: len(keeper.starts()) >= 2, 30, "its start after the limit")
    assert "over MEMORY_LIMIT (100 MiB): ending it" in keeper.log()
    assert keeper.stop() == 0


def test_a_renewal_starts_one_engine_again_at_once_and_ends_all_it_started(supervise, tmp_path):
    keeper = supervise(PARENT, count=2)
    children = tmp_path / "starts.child"
    wait_until(lambda: children.exists() and children.read_text().count("\n") == 2, 30, "each engine's child")
    first = {start[2].split("/")[1]: int(start[0]) for start in keeper.starts()}
    kids = [int(pid) for pid in children.read_text().split()]
    keeper.ask("renew 2")
    wait_until(lambda: len(keeper.starts()) == 3, 30, "the renewed engine's start")
    assert keeper.starts()[-1][2].startswith("node01/2/")
    wait_until(lambda: gone(first["2"]), 30, "the end of the renewed engine's first process")
    assert not gone(first["1"])  # the other engine runs on
    assert "renewal: the controller dropped this engine's registration; starting it again now" in keeper.log(2)
    assert "restart:" not in keeper.log(2)  # neither a crash nor a back-off
    assert keeper.stop() == 0
    assert all(gone(pid) for pid in [*first.values(), *kids])  # a stop ends all


def test_a_stop_during_the_back_off_wait_starts_nothing_more(supervise):
    keeper = supervise(CRASH, first_backoff="30.0")
    wait_until(lambda: "restart:" in keeper.log(), 30, "the first restart")  # now waiting 30 s
    began = time.monotonic()
    assert keeper.stop() == 0
    assert time.monotonic() - began < 15  # within the wait (a margin for load): it did not wait it out
    assert len(keeper.starts()) == 1


def test_engines_start_in_waves_of_one_per_core_and_at_least_four(supervise):
    wave = max(4, os.cpu_count())
    keeper = supervise(SLEEP, count=wave + 1)
    wait_until(lambda: len(keeper.starts()) == wave + 1, 30, "every start")
    began = sorted(float(start[3]) for start in keeper.starts())  # as each stand-in began
    # the first wave at once, the next a second later (what a Python takes to begin, on a
    # loaded machine, blurs each start by a fraction of that)
    assert began[wave] - began[0] >= 0.5
    assert keeper.stop() == 0


def test_each_engine_sees_one_gpu_round_robin_and_the_state_says_what_runs(supervise):
    keeper = supervise(SLEEP, count=3, devices="GPU-aa,GPU-bb")
    wait_until(lambda: len(keeper.starts()) == 3
               and all(e["state"] == "running" for e in keeper.state()["engines"].values()), 30,
               "three engines running")
    gpus = {start[2].split("/")[1]: start[1] for start in keeper.starts()}
    assert gpus == {"1": "GPU-aa", "2": "GPU-bb", "3": "GPU-aa"}
    state = keeper.state()
    assert state["pid"] == keeper.process.pid and state["mode"] == "process"
    assert {n: e["pid"] for n, e in state["engines"].items()} == {
        start[2].split("/")[1]: int(start[0]) for start in keeper.starts()}
    wait_until(lambda: keeper.state()["host"], 30, "the first sample")
    host = keeper.state()["host"]
    assert host["memory_total"] == psutil.virtual_memory().total and len(host["load"]) == 3
    assert host["cores"] == os.cpu_count() and isinstance(host["gpus"], list)
    assert all(e["rss"] > 0 for e in keeper.state()["engines"].values())
    pids = [int(start[0]) for start in keeper.starts()]
    assert keeper.stop() == 0
    assert all(gone(pid) for pid in pids)


def test_a_bad_command_line_says_how_to_call_it(tmp_path):
    process = subprocess.run(shipped.argv(shipped.unpack("start_engines", tmp_path), "engines.supervisor",
                                          "run", "x"), capture_output=True, text=True, timeout=30)
    assert process.returncode == 1 and process.stderr.startswith("usage: python RUN_DIR/ipp_remote engines.supervisor RUN_DIR")


def test_the_host_report_runs_beside_the_supervisor_and_ends_with_it(supervise):
    keeper = supervise(SLEEP, count=1)

    def reporters():
        return [p for p in psutil.Process(keeper.process.pid).children()
                if "engines.host_report" in p.cmdline()]
    wait_until(lambda: len(reporters()) == 1, 30, "the host report")
    [reporter] = reporters()
    others = [p for p in psutil.Process(keeper.process.pid).children() if p.pid != reporter.pid]
    keeper.process.kill()  # the supervisor dies without a word: its report ends by itself
    keeper.process.wait()
    for other in others:  # the stand-in engine, left as a crash leaves it
        other.kill()
    wait_until(lambda: gone(reporter.pid), 15, "the host report's end")


def test_a_gpu_query_that_hangs_again_and_again_leaves_the_supervisor_running(supervise, tmp_path, monkeypatch):
    """nvidia-smi that never answers is ended at each sample and asked again (a new pipe,
    which may get the number of the one closed): the engines' supervisor keeps going."""
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(f"#!/bin/sh\necho $$ >> {tmp_path / 'asked'}\nexec sleep 60\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}:{os.environ['PATH']}")
    keeper = supervise(SLEEP, changes=[("SAMPLE = 5.0", "SAMPLE = 0.2"), ("QUERY_TIMEOUT = 10.0", "QUERY_TIMEOUT = 0.1")])
    asked = tmp_path / "asked"
    wait_until(lambda: keeper.process.poll() is not None
               or asked.exists() and len(asked.read_text().split()) >= 4, 30, "four questions to nvidia-smi")
    assert keeper.process.poll() is None, keeper.process.stdout.read()[-300:]  # it samples on
    assert keeper.state()["engines"]["1"]["state"] == "running"
    assert keeper.stop() == 0
