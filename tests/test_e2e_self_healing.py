"""
End to end: engines that come back by themselves, and the memory guard. Host 1 is
the master; hosts 2 and 3 run two engines each, with MEMORY_LIMIT=300M.
"""

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import engines_by_id, leftovers, nothing_left, on, status_saying, three_host_inventory
from tests.conftest import fab_for, with_client
from tests.waiting import wait_until

NAME = PROFILE = "healing"
PORT = 18881
LIMIT = "300M"
#: The controller's connection file, which every start of an engine reads.
ENGINE_FILE = f'"${{IPYTHONDIR:-$HOME/.ipython}}/profile_{PROFILE}/security/ipcontroller-engine.json"'


@pytest.fixture(scope="module")
def fab_here(fake_hosts, tmp_path_factory):
    """``fab`` with this module's inventory: a master (host1) and two engines on each of
    host2 and host3. The cluster is downed after the module."""
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT,
                                     engine_hosts=(2, 3), MEMORY_LIMIT=LIMIT)
    with fab_for(fake_hosts, inventory) as run:
        yield run


@pytest.fixture
def cluster(fab_here, fake_hosts):
    """The cluster up with all its engines, whatever a test before did to it (each test
    passes alone and in any order); what a test changed is undone after it."""
    up = fab_here("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    yield fab_here
    for host in fake_hosts.hosts[:3]:
        host.run(f"umount {ENGINE_FILE} 2>/dev/null || true")
    if (fab_here.inventory / "cluster.env").read_text() != fab_here.settings:
        fab_here("cluster.down")  # its engines run with the changed settings
        (fab_here.inventory / "cluster.env").write_text(fab_here.settings)


def client(code):
    """Run *code* after ``c = ipp.Client(...)``; returns its last line, parsed as JSON."""
    return with_client(code, PROFILE)


def engines():
    """``{engine id: (hostname, pid)}`` of the registered engines."""
    return engines_by_id(PROFILE)


def wait_for(hostname, count, gone=(), timeout=60.0):
    """Seconds until *hostname* has *count* engines again, none of them a pid in *gone*.
    Each look is a client that may itself wait 20 s: the deadline is checked between them."""
    began = time.monotonic()

    def back():
        mine = on(engines(), hostname)
        assert len(mine) == count and not {v[1] for v in mine.values()} & set(gone), mine
        return True
    wait_until(back, timeout, f"{count} engines on {hostname}, none of the pids {list(gone)}", interval=0.2)
    return time.monotonic() - began


def test_an_engine_killed_with_sigkill_comes_back_by_itself(cluster, fake_hosts):
    victim = on(engines(), "host2")
    pid = sorted(v[1] for v in victim.values())[0]
    fake_hosts.hosts[1].run(f"kill -9 {pid}")
    wait_for("host2", 2, gone=[pid])
    status = cluster("cluster.status")
    assert status.returncode == 0, status.stdout + status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("│ 127.0.2.2 "))
    assert [cell.strip() for cell in row.split("│")[5:7]] == ["2/2", "1"]  # engines, restarts


def test_a_task_that_ends_its_engine_fails_with_ipyparallels_error_and_the_engine_returns(cluster):
    target, (_, pid) = sorted(on(engines(), "host3").items())[0]
    error = client(f"try:\n    c[{target}].apply_sync(os._exit, 1)\n    print('null')\n"
                   "except Exception as e:  # a RemoteError naming the EngineError\n"
                   "    print(json.dumps(getattr(e, 'ename', type(e).__name__)))\n")
    assert error == "EngineError"
    wait_for("host3", 2, gone=[pid])


def test_an_engine_past_memory_limit_is_ended_logged_and_restarted_others_untouched(cluster):
    (target, (_, pid)), (_, other) = sorted(on(engines(), "host3").items())
    code = ("def hog():\n    import time\n    held = []\n    for _ in range(60):\n"
            "        held.append(bytearray(20 << 20))\n        time.sleep(0.05)\n    return len(held)\n"
            f"try:\n    c[{target}].apply_sync(hog)\n    print('null')\n"
            "except Exception as e:  # a RemoteError naming the EngineError\n"
            "    print(json.dumps(getattr(e, 'ename', type(e).__name__)))\n")
    assert client(code) == "EngineError"
    wait_for("host3", 2, gone=[pid])
    assert other in on(engines(), "host3").values()  # the other engine of the host: untouched
    logs = cluster("cluster.logs", "--hosts=127.0.2.3", "--lines=200")
    assert "over MEMORY_LIMIT (300 MiB): ending it" in logs.stdout
    assert "restart: the engine ended (passed MEMORY_LIMIT (300 MiB) by " in logs.stdout


def test_a_crash_loop_gives_up_and_a_down_during_back_off_leaves_nothing(cluster, fake_hosts,
                                                                         tmp_path):
    host3 = fake_hosts.hosts[2]
    broken = tmp_path / "ipcontroller-engine.json"
    broken.write_text("{}\n")  # every engine that starts now ends at once with exit code 1
    host3.run(f"mount --bind {broken} {ENGINE_FILE}")  # host3 alone sees it
    pids = sorted(v[1] for v in on(engines(), "host3").values())
    host3.run(f"kill -9 {pids[0]}")
    status = status_saying(cluster, "crash-looping", 90)  # back-off 1+2+4+8+16 s, then it gives up
    assert status.returncode == 1
    assert re.search(r"error: 127\.0\.2\.3: engine [12] crash-looping: gave up: the engine ended 6 "
                     r"times in 5 min, the last time: exit code 1; fab cluster\.logs "
                     r"--hosts=127\.0\.2\.3 says why", status.stderr), status.stderr
    since = time.strftime("%Y-%m-%d %H:%M:%S")  # the logs hold earlier runs' lines too
    host3.run(f"kill -9 {pids[1]}")
    wait_until(lambda: _killed_since(cluster, since), 30, "the nanny's line on the engine killed",
               interval=0.2)
    assert len(_killed_since(cluster, since)) == 1  # the other engine waits in its back-off
    down = cluster("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3)) == {}
    nothing_left(fake_hosts, (1, 2, 3))  # so nothing starts afterwards: nothing is left to start it


def _logs(cluster):
    return cluster("cluster.logs", "--hosts=127.0.2.3", "--lines=400").stdout


def _killed_since(cluster, since):
    """The nanny's lines on 127.0.2.3 saying, at *since* (``%Y-%m-%d %H:%M:%S``) or later, that
    an engine was killed and starts again."""
    lines = re.findall(r"^=== nanny ([0-9-]+ [0-9:]+): restart: the engine ended \(signal 9 \(SIGKILL\)\);"
                       r" starting it again in ", _logs(cluster), re.MULTILINE)
    return [stamp for stamp in lines if stamp >= since]


def test_with_engine_restart_no_a_dead_engine_stays_dead(cluster, fake_hosts):
    assert cluster("cluster.down").returncode == 0  # its engines start with the setting
    env = cluster.inventory / "cluster.env"
    env.write_text(env.read_text() + "ENGINE_RESTART=no\n")
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    pid = sorted(v[1] for v in on(engines(), "host2").values())[0]
    fake_hosts.hosts[1].run(f"kill -9 {pid}")

    def stays_stopped():
        logs = cluster("cluster.logs", "--hosts=127.0.2.2").stdout
        assert "it stays stopped" in logs, logs  # what the failure says
        return logs
    logs = wait_until(stays_stopped, 60, "the supervisor's word that the engine stays stopped", interval=0.2)
    assert "the engine ended (signal 9 (SIGKILL)); ENGINE_RESTART=no: it stays stopped" in logs
    wait_for("host2", 1, gone=[pid])  # the controller dropped it, and nothing started it again
    status = cluster("cluster.status")
    assert status.returncode == 1
    row = next(line for line in status.stdout.splitlines() if line.startswith("│ 127.0.2.2 "))
    assert [cell.strip() for cell in row.split("│")[5:6]] == ["1/2"], status.stdout


def test_a_crashed_supervisor_is_named_by_status_and_mended_by_engines_start(cluster, fake_hosts):
    run_dir = Path.home() / ".ipp-cluster" / NAME / "host3"
    supervisor = json.loads((run_dir / f"{NAME}-engines.json").read_text())["pid"]
    before = on(engines(), "host3")
    fake_hosts.hosts[2].run(f"kill -9 {supervisor}")  # the supervisor alone: its engines run on
    status = status_saying(cluster, "supervisor ended", 30)
    assert status.returncode == 1
    assert ("error: 127.0.2.3: the engines' supervisor ended without a stop (fab cluster.logs"
            " --hosts=127.0.2.3 says why); fab engines.start starts it again") in status.stderr
    assert on(engines(), "host3") == before  # unsupervised, but at work
    started = cluster("engines.start")
    assert started.returncode == 0, started.stdout + started.stderr
    after = on(engines(), "host3")
    assert len(after) == 2 and not {v[1] for v in after.values()} & {v[1] for v in before.values()}
    assert json.loads((run_dir / f"{NAME}-engines.json").read_text())["pid"] != supervisor
    assert cluster("cluster.status").returncode == 0
