"""
End to end: a real cluster on fake SSH hosts, driven by ``fab`` as a user would.

The master is host1; host2-host4 run two engines each. A test that needs the
cluster up or down makes it so first (`running`), so each passes alone and in any order.
"""

import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import (
    engines_per_host,
    fab,
    leftovers,
    three_host_inventory,
    write_inventory,
)

NAME = PROFILE = "e2e"
PORT = 18801


@pytest.fixture(scope="module")
def cluster(fake_hosts, tmp_path_factory):
    """An inventory for host1 (master) and host2-4 (2 engines each); the cluster is downed after."""
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT,
                                     ENGINE_TIMEOUT=90)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    yield run
    run("cluster.down")


@pytest.fixture
def running(cluster):
    """The cluster up, whatever ran before."""
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    return cluster


def test_up_registers_two_engines_on_each_engine_host(cluster):
    result = cluster("cluster.up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == ("Jupyter and the dashboard listen on 127.0.2.1's "
                                              "127.0.0.1:18801 only: fab cluster.tunnel brings them "
                                              "here and prints their URLs")
    assert "token=" not in result.stdout  # a URL of the master's own loopback would lead nowhere here
    assert "engines registered: 6/6" in result.stdout
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 2}


def cluster_pids(fake_hosts):
    """The pids of the controller, Jupyter and engines on host1-4."""
    return {host.name: host.run("pgrep -f '[b]in/(ipengine|jupyter)|ipp_remote [m]aster[.]controller' | sort")
            for host in fake_hosts.hosts[:4]}


def test_up_again_starts_nothing_twice(running, fake_hosts):
    cluster = running
    before = cluster_pids(fake_hosts)
    assert all(before.values())
    result = cluster("cluster.up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cluster_pids(fake_hosts) == before
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 2}


def test_status_is_healthy(running):
    cluster = running
    result = cluster("cluster.status")
    assert result.returncode == 0, result.stdout + result.stderr
    for n in (2, 3, 4):
        assert f"127.0.2.{n}" in result.stdout
    assert result.stdout.count("2/2") == 3


def test_url_token_opens_jupyter_and_nothing_else_does(running):
    cluster = running
    result = cluster("master.url")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().splitlines()[-1]
    token = url.split("token=")[1]
    assert url == f"http://127.0.0.1:{PORT}/?token={token}" and len(token) >= 32
    api = f"http://127.0.0.1:{PORT}/api/status"
    request = urllib.request.Request(api, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(api, timeout=10)
    assert denied.value.code == 403


def test_token_is_on_no_command_line(running, fake_hosts):
    cluster = running
    token = cluster("master.url").stdout.strip().splitlines()[-1].split("token=")[1]
    master = fake_hosts.hosts[0]
    assert token not in master.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    modes = master.run(f"stat -c '%a %F %n' ~/.ipp-cluster ~/.ipp-cluster/{NAME} "
                       f"~/.ipp-cluster/{NAME}/host1 ~/.ipp-cluster/{NAME}/host1/* "
                       f"~/.ipp-cluster/{NAME}/host1/*/*").splitlines()
    assert [m.split()[0] for m in modes[:3]] == ["700", "700", "700"]
    # in the run directory: files 0600 (logs, lock, token, programs), folders 0700
    # (python/, what the master's Jupyter imports; dashboard/, what it shows)
    assert {m.split(" ", 2)[1] for m in modes[3:] if m.split()[0] == "600"} == {"regular"}, modes
    assert {m.split()[0] for m in modes[3:] if " directory " in m} == {"700"}, modes
    assert {m.split()[0] for m in modes[3:]} == {"600", "700"}, modes
    listening = master.run("ss -ltnH 'sport = :18801'").splitlines()
    assert listening and all(line.split()[3] == "127.0.0.1:18801" for line in listening)


def test_engines_restart_brings_back_six_engines(running, fake_hosts):
    cluster = running
    before = {n: fake_hosts.hosts[n - 1].run("pgrep -f '[b]in/ipengine' | sort") for n in (2, 3, 4)}
    result = cluster("engines.restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 2}
    after = {n: fake_hosts.hosts[n - 1].run("pgrep -f '[b]in/ipengine' | sort") for n in (2, 3, 4)}
    assert all(set(before[n].split()).isdisjoint(after[n].split()) for n in before)


def test_down_leaves_no_process_and_no_screen(running, fake_hosts):
    cluster = running
    result = cluster("cluster.down")
    assert result.returncode == 0, result.stdout + result.stderr
    assert leftovers(fake_hosts, (1, 2, 3, 4)) == {}


def test_down_on_a_stopped_cluster_succeeds(cluster):
    assert cluster("cluster.down").returncode == 0
    result = cluster("cluster.down")
    assert result.returncode == 0, result.stdout + result.stderr
    status = cluster("cluster.status")
    assert status.returncode == 3 and "is stopped: nothing of it runs on any host" in status.stderr


def test_start_master_and_stop_master_with_dash_h(fake_hosts, tmp_path):
    inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.1\n",
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME="solo",
                                IPP_PROFILE="solo", JUPYTER_PORT=18802,
                                KNOWN_HOSTS=fake_hosts.known_hosts)
    host = fake_hosts.hosts[4]
    started = fab("-H", host.address, "start-master", inventory=inventory, key=fake_hosts.client_key)
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.strip().splitlines()[-1].startswith("http://127.0.0.1:18802/?token=")
    assert sorted(s.split(".", 1)[1] for s in host.screens()) == ["solo-controller", "solo-jupyter"]
    assert [s for s in fake_hosts.hosts[0].screens() if ".solo-" in s] == []  # not the inventory's
    stopped = fab("-H", host.address, "stop-master", inventory=inventory, key=fake_hosts.client_key)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert leftovers(fake_hosts, (5,)) == {}
