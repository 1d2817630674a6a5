"""
End to end: an inventory written as for Ansible (a range, group variables, a host
reached under another name), and engines controlled per host with ``--hosts``.
Host 1 is the master; ``127.0.2.[2:4]`` run two engines each (``[engines:vars]``),
and ``node05`` is host 5 reached through ``ansible_host``/``ansible_port``/``ansible_user``.
"""

import subprocess
import sys

import pytest

from tests.conftest import engines_by_id, fab_for, on, write_inventory

NAME = PROFILE = "perhost"
PORT = 18871
HOSTS = """\
[master]
127.0.2.1

[engines]
127.0.2.[2:4]

[engines:vars]
engines=2
ansible_python_interpreter=/usr/bin/python3
"""
NODE05 = "node05 ansible_host=127.0.2.5 ansible_port=2222 ansible_user=root engines=1\n"
WITH_NODE05 = HOSTS.replace("127.0.2.[2:4]\n", "127.0.2.[2:4]\n" + NODE05)


@pytest.fixture(scope="module")
def fab_here(fake_hosts, tmp_path_factory):
    """fab on this module's inventory; the cluster is downed after the module."""
    inventory = write_inventory(tmp_path_factory.mktemp("inv"), WITH_NODE05,
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME=NAME, IPP_PROFILE=PROFILE,
                                JUPYTER_PORT=PORT, KNOWN_HOSTS=fake_hosts.known_hosts,
                                ENGINE_TIMEOUT=60)
    with fab_for(fake_hosts, inventory) as run:
        yield run
        (inventory / "hosts").write_text(WITH_NODE05)  # downed with node05 in it


@pytest.fixture
def cluster(fab_here):
    """Each test starts from the same cluster, whatever ran before: the inventory HOSTS
    (node05 is not in it, and runs no engine), every engine of it up."""
    (fab_here.inventory / "hosts").write_text(WITH_NODE05)
    assert fab_here("engines.stop", "--hosts=node05").returncode == 0
    (fab_here.inventory / "hosts").write_text(HOSTS)
    up = fab_here("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    return fab_here


def ipengines(fake_hosts, number):
    return set(fake_hosts.hosts[number - 1].run("pgrep -f '[b]in/ipengine' || true").split())


def test_a_range_and_group_variables_bring_their_engines_up(cluster):
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stderr == (f"warning: {cluster.inventory}/hosts: ignored (they mean nothing here): "
                         "ansible_python_interpreter\n")
    engines = engines_by_id(PROFILE)
    assert sorted(v[0] for v in engines.values()) == ["host2"] * 2 + ["host3"] * 2 + ["host4"] * 2


def test_a_host_added_later_is_started_alone_under_its_name(cluster, fake_hosts):
    before = engines_by_id(PROFILE)
    (cluster.inventory / "hosts").write_text(WITH_NODE05)
    started = cluster("engines.start", "--hosts=node0*")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "│ node05 " in started.stdout and "│ 127.0.2.2 " not in started.stdout
    after = engines_by_id(PROFILE)
    assert {i: v for i, v in after.items() if i in before} == before  # the others untouched
    assert [v[0] for i, v in after.items() if i not in before] == ["host5"]
    status = cluster("cluster.status")
    assert status.returncode == 0, status.stdout + status.stderr
    up = cluster("cluster.up")  # starts only what is missing: nothing
    assert up.returncode == 0 and engines_by_id(PROFILE) == after


def test_restart_of_one_host_leaves_every_other_engine_as_it_was(cluster, fake_hosts):
    before = engines_by_id(PROFILE)
    pids = {n: ipengines(fake_hosts, n) for n in (2, 4)}
    restarted = cluster("engines.restart", "--hosts=127.0.2.3")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    after = engines_by_id(PROFILE)
    assert {i: v for i, v in after.items() if v[0] != "host3"} == {
        i: v for i, v in before.items() if v[0] != "host3"}
    assert {n: ipengines(fake_hosts, n) for n in (2, 4)} == pids
    assert len(on(after, "host3")) == 2 and not set(on(after, "host3")) & set(on(before, "host3"))


def test_stop_of_one_host_while_the_others_work_leaves_their_tasks_alone(cluster, fake_hosts):
    code = ("import ipyparallel as ipp, socket\n"
            "def slow():\n"
            "    import socket, time\n"
            "    time.sleep(4)\n"
            "    return socket.gethostname()\n"
            f"c = ipp.Client(profile={PROFILE!r}, timeout=20)\n"
            "ids = [i for i, h in c[:].apply_async(socket.gethostname).get_dict().items()\n"
            "       if h != 'host3']\n"
            "task = c[ids].apply_async(slow)\n"
            "print('submitted', flush=True)\n"
            "print(sorted(task.get(timeout=60)))\n")
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "submitted"
    stopped = cluster("engines.stop", "--hosts=127.0.2.3")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    done = client.stdout.read().strip()
    assert client.wait(timeout=60) == 0
    assert done == "['host2', 'host2', 'host4', 'host4']"  # every task, on every other host
    assert ipengines(fake_hosts, 3) == set()
    engines = engines_by_id(PROFILE)
    assert sorted({v[0] for v in engines.values()}) == ["host2", "host4"]
    status = cluster("engines.status", "--hosts=127.0.2.2,127.0.2.4")
    assert status.returncode == 0, status.stdout + status.stderr
    drained = cluster("engines.status", "--hosts=127.0.2.3")
    assert drained.returncode == 1
    assert drained.stderr.splitlines()[-1] == ("error: 127.0.2.3: 0 of 2 engines running;"
                                               " 0 of 2 engines registered")


@pytest.mark.parametrize("args, message", [
    (("engines.restart", "--hosts=node9*"), "error: --hosts=node9*: not in the inventory: node9*"),
    (("engines.stop", "--hosts=127.0.2.1"), "error: --hosts=127.0.2.1: not an engine host: 127.0.2.1"),
    (("cluster.status", "--hosts=nope"), "error: --hosts=nope: not in the inventory: nope"),
])
def test_a_name_that_matches_no_host_is_an_error(cluster, args, message):
    result = cluster(*args)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (2, message)
