"""
End to end: faults on fake SSH hosts. The rest keeps working, the failure is
named, and the next command repairs it. Host 1 is the master; hosts 2-4 run two
engines each. A host crash is killing its sshd, pid 1 of its namespace.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import (
    FAB,
    PROJECT,
    engines_per_host,
    fab,
    leftovers,
    three_host_inventory,
    write_inventory,
)
from tests.waiting import wait_until

NAME = PROFILE = "faults"
PORT = 18811
ALL = {"host2": 2, "host3": 2, "host4": 2}


@pytest.fixture(scope="module")
def cluster(fake_hosts, tmp_path_factory):
    """Run fab on this module's inventory; hosts are booted again and the cluster downed after."""
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT,
                                     ENGINE_TIMEOUT=30, CONNECT_TIMEOUT=3)

    def run(*args, **kwargs):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, **kwargs)
    run.inventory = inventory
    yield run
    for host in fake_hosts.hosts:
        if host.process.poll() is not None:
            host.start()
    run("cluster.down")


def _boot_crashed(fake_hosts):
    for host in fake_hosts.hosts:
        if host.process.poll() is not None:
            host.start()


@pytest.fixture(autouse=True)
def booted(fake_hosts):
    """Every host up before and after each test, whatever a test (or its failure) crashed:
    each test passes alone and in any order, and no other module meets a dead host."""
    _boot_crashed(fake_hosts)
    yield
    _boot_crashed(fake_hosts)


@pytest.fixture
def healthy(cluster):
    """The cluster up with all its engines, for a test that breaks it."""
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert engines_per_host(PROFILE) == ALL
    return cluster


def errors(result):
    """The ``error: HOST: ...`` lines a task printed, as {host: line}."""
    lines = [line[len("error: "):] for line in result.stderr.splitlines() if line.startswith("error: ")]
    return {line.split(":")[0]: line for line in lines}


def engine_pids(fake_hosts, number):
    return set(fake_hosts.hosts[number - 1].run("pgrep -f '[b]in/ipengine' || true").split())


def test_dead_engine_host_at_up_is_named_and_later_repaired(cluster, fake_hosts):
    assert cluster("cluster.down").returncode == 0
    fake_hosts.hosts[3].crash()
    up = cluster("cluster.up")
    assert up.returncode != 0
    assert list(errors(up)) == ["127.0.2.4"] and "unreachable" in errors(up)["127.0.2.4"]
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2}
    before = engine_pids(fake_hosts, 2) | engine_pids(fake_hosts, 3)

    fake_hosts.hosts[3].start()
    again = cluster("cluster.up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert engines_per_host(PROFILE) == ALL
    assert engine_pids(fake_hosts, 2) | engine_pids(fake_hosts, 3) == before


def test_killed_engines_are_reported_within_15_s_and_restarted(healthy, fake_hosts):
    cluster = healthy
    fake_hosts.hosts[2].run("pkill -KILL -f '[b]in/ipengine'")

    def reported():
        status = cluster("cluster.status")
        said = errors(status).get("127.0.2.3", "")
        assert "0 of 2 engines registered" in said, status.stdout + status.stderr
        return status
    status = wait_until(reported, 15, "cluster.status naming the 2 engines killed on 127.0.2.3", interval=0)
    assert status.returncode != 0 and list(errors(status)) == ["127.0.2.3"]
    restart = cluster("engines.restart")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert engines_per_host(PROFILE) == ALL
    assert cluster("cluster.status").returncode == 0


def test_killed_controller_is_reported_and_up_restarts_it(healthy, fake_hosts):
    cluster = healthy  # the controller and its nanny, which would start it again, killed
    fake_hosts.hosts[0].run("pkill -KILL -f '/faults/host1/(ipp_remote shared[.]nanny controller|ipp_remote master[.]controller)'")
    status = cluster("cluster.status")
    assert status.returncode != 0 and "controller" in errors(status)["127.0.2.1"]
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert engines_per_host(PROFILE) == ALL


def test_crashed_host_is_unreachable_and_down_stops_the_rest(healthy, fake_hosts):
    cluster = healthy
    fake_hosts.hosts[2].crash()
    status = cluster("cluster.status")
    assert status.returncode != 0
    assert list(errors(status)) == ["127.0.2.3"] and "unreachable" in errors(status)["127.0.2.3"]
    down = cluster("cluster.down")
    assert down.returncode != 0 and list(errors(down)) == ["127.0.2.3"]
    assert leftovers(fake_hosts, (1, 2, 4)) == {}


def test_a_host_that_never_speaks_ssh_is_given_up_after_the_connect_timeout(fake_hosts, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.2.9", 22))
    silent.listen(16)  # accepts TCP, never says a word
    try:
        inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.9\n",
                                    CLUSTER_ENV=sys.prefix, CLUSTER_NAME="silent",
                                    IPP_PROFILE="silent", CONNECT_TIMEOUT=2,
                                    KNOWN_HOSTS=fake_hosts.known_hosts)
        for task in ("cluster.status", "engines.stop", "cluster.down"):
            result = fab(task, inventory=inventory, key=fake_hosts.client_key, timeout=60)
            assert result.returncode != 0
            assert "127.0.2.9" in errors(result) and "unreachable" in errors(result)["127.0.2.9"]
    finally:
        silent.close()


def test_two_ups_at_once_start_one_of_each(cluster, fake_hosts):
    assert cluster("cluster.down").returncode == 0
    env_args = dict(cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ups = [subprocess.Popen(_fab_argv(cluster, fake_hosts, "cluster.up"), **env_args, env=_env(cluster))
           for _ in range(2)]
    outputs = [up.communicate(timeout=300) for up in ups]
    assert [up.returncode for up in ups] == [0, 0], outputs
    screens = sorted(s.split(".", 1)[1] for s in fake_hosts.hosts[0].screens())
    assert screens == ["faults-controller", "faults-jupyter"]
    for number in (2, 3, 4):  # one supervisor each, which started the host's engines
        assert [s.split(".", 1)[1] for s in fake_hosts.hosts[number - 1].screens()] == ["faults-engines"]
    assert engines_per_host(PROFILE) == ALL


@pytest.mark.parametrize("interrupt", ["cluster.down", "ctrl-c"])
def test_nothing_half_started_stays_after_the_next_down(cluster, fake_hosts, interrupt):
    assert cluster("cluster.down").returncode == 0
    up = subprocess.Popen(_fab_argv(cluster, fake_hosts, "cluster.up"), cwd=PROJECT,
                          env=_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: up.poll() is not None or any(engine_pids(fake_hosts, n) for n in (2, 3, 4)),
               60, "engines starting (half-way) or cluster.up ended", interval=0.05)
    assert up.poll() is None, up.communicate()  # half-way: engines starting
    # No engine registers now: half-way it stays. (The controller alone: not its screen.)
    fake_hosts.hosts[0].run("pkill -STOP -f '^[^ ]*python[0-9.]* [^ ]*/ipp_remote master[.]controller '")
    assert up.poll() is None  # ... and up still waits for them to register
    if interrupt == "ctrl-c":
        up.send_signal(signal.SIGINT)
    else:
        beside = cluster("cluster.down")
        assert beside.returncode == 0, beside.stdout + beside.stderr
        assert "cluster stopped" in beside.stdout
    out, err = up.communicate(timeout=120)
    assert up.returncode != 0, out + err  # it did not finish: it was interrupted
    down = cluster("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3, 4)) == {}


def _fab_argv(cluster, fake_hosts, task):
    return [str(FAB), "-i", str(fake_hosts.client_key), task]


def _env(cluster):
    return dict(os.environ, CLUSTER_INVENTORY=str(cluster.inventory))
