"""
The supervisor (``tasks/remote/engines/supervisor.py``) with real engines and a real local
controller (ipyparallel's `Cluster`, started here): engines forked from its warm Python
register, a task on one is interrupted by ``Client.send_signal`` and a queued one dropped
by ``Client.abort`` (the host nanny, forked too, relays them), an engine killed is known
dead to the hub at once (the host nanny tells it) and started again, a host nanny killed
is started again and the engines run on; with a KernelNanny the host nanny does not know,
each engine gets one forked, and with an ipyparallel the supervisor does not know, each
engine is a process of its own. No SSH, no root.
"""

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import ipyparallel as ipp
import psutil
import pytest
from ipyparallel.controller.heartmonitor import HeartMonitor

from tasks.remote.master import probe
from tests.test_supervisor import NAME, Supervised, gone
from tests.waiting import wait_until

BIN = Path(sys.executable).parent
ENGINE = [str(BIN / "ipengine"), "--profile=forked", "--log-level=ERROR"]
#: The supervisor run with an ipyparallel whose version it does not know, and nothing else changed.
UNKNOWN_VERSION = ("-c", "import runpy, sys, ipyparallel; ipyparallel.__version__ = '99.0.0'; "
                         "sys.argv = sys.argv[1:]; sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0]); "
                         "runpy.run_path(sys.argv[0], run_name='__main__')")
#: Seconds (at least) before the hub of `client` (ipyparallel's default heartbeat) unregisters an engine
#: whose heart stopped: what an engine's death would take to be known without its nanny.
HEARTBEAT = (HeartMonitor.class_traits()["period"].default_value / 1000
             * HeartMonitor.class_traits()["max_heartmonitor_misses"].default_value)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client of a controller of the profile ``forked`` in an IPython dir of its own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    cluster = ipp.Cluster(profile="forked", cluster_id="", n=0)
    cluster.start_controller_sync()
    client = cluster.connect_client_sync()
    yield client
    client.close()
    cluster.stop_controller_sync()
    patch.undo()


def engines_of(keeper):
    """{engine number: pid} of the engines *keeper*'s state says run."""
    return {int(n): e["pid"] for n, e in keeper.state()["engines"].items() if e["state"] == "running"}


def registered(client, count, timeout=60):
    """The ids of the engines once *count* are registered."""
    client.wait_for_engines(count, timeout=timeout)
    return list(client.ids)


@pytest.fixture
def forked(tmp_path, client):
    keeper = Supervised(tmp_path, None, count=2, engine=ENGINE)
    yield keeper
    pids = [p.pid for p in psutil.Process(keeper.process.pid).children()]
    assert keeper.stop() == 0
    wait_until(lambda: not client.ids, 30, "no engine registered")  # each nanny told the hub
    assert all(gone(pid) for pid in pids)  # engines and nannies ended


def test_forked_engines_register_each_its_own_process_group_and_name(forked, client):
    registered(client, 2)
    assert all(re.fullmatch(r"node01/[12]/[0-9]+/[0-9a-f]{16}", uuid)
               for uuid in probe.engine_uuids(client).values())  # as it wrote in their files
    state = forked.state()
    assert state["mode"] == "fork"
    for number, pid in engines_of(forked).items():
        engine = psutil.Process(pid)
        assert engine.ppid() == forked.process.pid and engine.name() == f"ipengine-{number}"
        assert os.getpgid(pid) == pid
    assert [p.name() for p in nannies_of(forked)] == ["ipp-nanny"]  # one for the host, forked too
    children = psutil.Process(forked.process.pid).children()
    assert not [p for p in children if "engines.host_report" in p.cmdline()]  # the host nanny sends it
    assert forked.said().endswith(": 2 engines, forked from this Python\n")


def nannies_of(keeper):
    """The KernelNannies among the children of *keeper*'s supervisor."""
    return [p for p in psutil.Process(keeper.process.pid).children() if p.name().startswith("ipp-nanny")]


def nap(path):
    """A task that says it began (in the file *path*), then sleeps a minute."""
    import time
    open(path, "w").close()
    time.sleep(60)


def test_send_signal_interrupts_a_task_on_a_forked_engine(forked, client, tmp_path):
    target = registered(client, 2)[0]
    sleeping = client[target].apply_async(nap, str(tmp_path / "began"))
    wait_until(lambda: (tmp_path / "began").exists(), 30, "the task's start")  # its sleep begins
    client.send_signal(signal.SIGINT, targets=[target], block=True)
    wait_until(sleeping.ready, 30, "the task's end, long before its minute")
    with pytest.raises(ipp.error.RemoteError) as interrupted:
        sleeping.get(timeout=0)
    assert interrupted.value.ename == "KeyboardInterrupt"  # not the end of its sleep: the signal
    assert client[target].apply_sync(lambda: 6 * 7) == 42  # the engine lives on


def test_abort_drops_a_task_queued_on_a_forked_engine(forked, client, tmp_path):
    """``Client.abort`` reaches the engine by its control channel, which the nanny relays."""
    target = registered(client, 2)[0]
    sleeping = client[target].apply_async(nap, str(tmp_path / "began"))
    queued = client[target].apply_async(lambda: 6 * 7)
    wait_until(lambda: (tmp_path / "began").exists(), 30, "the first task's start")
    client.abort(queued, targets=[target], block=True)
    client.send_signal(signal.SIGINT, targets=[target], block=True)  # the first ends at once
    wait_until(queued.ready, 30, "the queued task's answer")
    with pytest.raises(ipp.error.TaskAborted):
        queued.get(timeout=0)
    assert sleeping.ready()


def test_a_crash_of_the_host_nanny_is_healed_and_the_engines_run_on(forked, client, tmp_path):
    """A nanny killed is started again at once: the engines it served keep their pids and
    are served again (signals, the death notice), and so are the engines started since."""
    registered(client, 2)
    engines = engines_of(forked)
    [crashed] = nannies_of(forked)
    crashed.kill()
    wait_until(lambda: [p.pid for p in nannies_of(forked)] not in ([], [crashed.pid]), 30, "a new nanny")
    assert engines_of(forked) == engines and len(client.ids) == 2  # no engine ended
    target = probe_target(client, engines[2])
    sleeping = client[target].apply_async(nap, str(tmp_path / "began"))
    wait_until(lambda: (tmp_path / "began").exists(), 30, "the task's start")
    client.send_signal(signal.SIGINT, targets=[target], block=True)
    wait_until(sleeping.ready, 30, "the task's end, long before its minute")
    with pytest.raises(ipp.error.RemoteError) as interrupted:
        sleeping.get(timeout=0)
    assert interrupted.value.ename == "KeyboardInterrupt"
    psutil.Process(engines[1]).kill()
    began = time.monotonic()
    wait_until(lambda: len(client.ids) == 1, 2 * HEARTBEAT, "the killed engine's unregistration")
    assert time.monotonic() - began < HEARTBEAT
    wait_until(lambda: len(client.ids) == 2, 60, "its registration again")
    assert "the host nanny ended (signal 9 (SIGKILL)); starting it again now" in line_of(forked, "host nanny")


def line_of(keeper, text):
    """The next line of *keeper*'s output that holds *text* ('' if none before its end)."""
    while (line := keeper.process.stdout.readline()) and text not in line:
        pass
    return line


def probe_target(client, pid):
    """The id of the engine whose process is *pid*."""
    return next(i for i in client.ids if client[i].apply_sync(os.getpid) == pid)


def test_a_killed_engine_is_known_dead_at_once_and_started_again(forked, client):
    before = registered(client, 2)
    engines = engines_of(forked)
    psutil.Process(engines[1]).kill()
    began = time.monotonic()
    wait_until(lambda: len(client.ids) == 1, 2 * HEARTBEAT, "the killed engine's unregistration")
    assert time.monotonic() - began < HEARTBEAT  # its nanny told the hub: no heartbeat wait
    wait_until(lambda: len(client.ids) == 2, 60, "its registration again")  # after a back-off of 0.05 s
    assert set(client.ids) - set(before)
    assert engines_of(forked)[1] != engines[1] and forked.state()["engines"]["1"]["starts"] == 2
    assert "restart: the engine ended (signal 9 (SIGKILL))" in forked.log(1)


def fork_a_stayer(path):
    """A task that forks a child which ignores SIGTERM and sleeps (holding all the engine's
    files: the end of its nanny's pipe too), and writes the child's pid to *path*."""
    import os
    import signal
    import time
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(path, "w") as file:
            file.write(str(os.getpid()))
        time.sleep(60)
        os._exit(0)


def test_an_engine_killed_is_known_dead_though_a_child_keeps_its_nannys_pipe(forked, client, tmp_path):
    """The pipe's end is not all: the supervisor tells the host nanny that it reaps the
    engine, before what the engine left (its child, here) is killed, `GRACE` s later."""
    target = registered(client, 2)[0]
    engine = client[target].apply_sync(os.getpid)
    client[target].apply_sync(fork_a_stayer, str(tmp_path / "stayer"))
    stayer = int(wait_until(lambda: (tmp_path / "stayer").read_text(), 30, "the child's pid"))
    psutil.Process(engine).kill()
    wait_until(lambda: target not in client.ids, 2 * HEARTBEAT, "the killed engine's unregistration")
    assert not gone(stayer)  # the pipe is still open: the supervisor's word did it


def test_with_a_kernel_nanny_it_does_not_know_each_engine_gets_one_forked(tmp_path, client):
    """The host nanny relies on KernelNanny's handlers: without one of them (another
    ipyparallel), each engine gets a KernelNanny of its own, as before, and signals work."""
    keeper = Supervised(tmp_path, None, count=2, engine=ENGINE, changes=(
        ('USED = ("dispatch_control"', 'USED = ("no_such_handler"'),))
    try:
        target = registered(client, 2)[0]
        names = [p.name() for p in nannies_of(keeper)]
        assert len(names) == 2 and all(re.fullmatch(r"ipp-nanny-[0-9]+", name) for name in names), names
        sleeping = client[target].apply_async(nap, str(tmp_path / "began"))
        wait_until(lambda: (tmp_path / "began").exists(), 30, "the task's start")
        client.send_signal(signal.SIGINT, targets=[target], block=True)
        wait_until(sleeping.ready, 30, "the task's end, long before its minute")
    finally:
        assert keeper.stop() == 0
    wait_until(lambda: not client.ids, 30, "no engine registered")


def test_with_an_ipyparallel_it_does_not_know_each_engine_is_a_process(tmp_path, client):
    keeper = Supervised(tmp_path, None, count=2, engine=ENGINE, python=(sys.executable, *UNKNOWN_VERSION))
    try:
        registered(client, 2)
        said = keeper.said()
        assert said.endswith("each a process of its own: ipyparallel 99.0.0 is not a version the"
                             " supervisor knows (9.x)\n")
        assert keeper.state()["mode"] == "process"
        for pid in engines_of(keeper).values():
            assert psutil.Process(pid).cmdline()[1:3] == [str(BIN / "ipengine"), "--profile=forked"]
    finally:
        assert keeper.stop() == 0
    wait_until(lambda: not client.ids, 30, "no engine registered")


def test_an_engine_process_has_its_identity_on_no_command_line_only_in_a_file_of_the_users(
        tmp_path, client):
    """Another user of the host reads every command line in /proc: an identity there is
    one they can connect with first when the engine's sockets reconnect. Each start has a
    random part too."""
    keeper = Supervised(tmp_path, None, count=2, engine=ENGINE, python=(sys.executable, *UNKNOWN_VERSION))
    try:
        registered(client, 2)
        assert keeper.state()["mode"] == "process"
        uuids = sorted(probe.engine_uuids(client).values())
        processes = psutil.Process(keeper.process.pid).children(recursive=True)  # engines, their nannies
        assert len(processes) >= 4
        for process in processes:
            try:
                line = "\0".join(process.cmdline())
            except psutil.NoSuchProcess:  # ended since (a query of nvidia-smi)
                continue
            assert "Session.session" not in line and not any(uuid in line for uuid in uuids), line
        assert [uuid.rsplit("/", 2)[0] for uuid in uuids] == ["node01/1", "node01/2"]
        assert all(re.fullmatch(r"node01/[12]/[0-9]+/[0-9a-f]{16}", uuid) for uuid in uuids), uuids
        files = sorted(tmp_path.glob(f"{NAME}-engine-*.session.json"))
        assert [oct(path.stat().st_mode & 0o777) for path in files] == ["0o600", "0o600"]
        assert sorted(json.loads(path.read_text())["Session"]["session"] for path in files) == uuids
    finally:
        assert keeper.stop() == 0
    wait_until(lambda: not client.ids, 30, "no engine registered")
    assert not list(tmp_path.glob("*.session.json"))  # no longer needed: gone
