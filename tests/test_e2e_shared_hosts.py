"""
End to end: hosts shared by several users. A user's cluster is that user's: root,
and another user, running the same cluster name on the same hosts, see and stop
only their own processes.
"""

import pytest

from tests.conftest import fab, leftovers, users, write_inventory

NAME = "shared"  # every user's cluster has this name and profile
OWNER, OTHER = "ippowner", "ippother"
HOSTS = ("127.0.2.1", "127.0.2.2", "127.0.2.3")


def inventory_for(folder, user, env, port, fake_hosts, **settings):
    at = f"{user}@" if user else ""
    hosts = f"[master]\n{at}{HOSTS[0]}\n[engines]\n{at}{HOSTS[1]} engines=2\n{at}{HOSTS[2]} engines=1\n"
    return write_inventory(folder, hosts, CLUSTER_ENV=env, CLUSTER_NAME=NAME, IPP_PROFILE=NAME,
                           JUPYTER_PORT=port, KNOWN_HOSTS=fake_hosts.known_hosts, **settings)


def pids(fake_hosts, user):
    """The pids of *user*'s processes of the cluster (controller, engines, their screens) on each host."""
    return {host.name: host.run(f"pgrep -u {user} -f 'bin/ipengine|/ipp_remote master[.]controller ' | sort")
            for host in fake_hosts.hosts[:3]}


@pytest.fixture(scope="module")
def owner_cluster(fake_hosts, shared_env, tmp_path_factory):
    """OWNER's cluster up on host1-3; OWNER's fab, and OTHER's inventory of the same cluster."""
    with users(OWNER, OTHER):
        inventory = inventory_for(tmp_path_factory.mktemp("owner"), OWNER, shared_env, 18871, fake_hosts)

        def run(*args):
            return fab(*args, inventory=inventory, key=fake_hosts.client_key)
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            yield run
        finally:
            down = run("cluster.down")
            assert down.returncode == 0, down.stdout + down.stderr
            assert leftovers(fake_hosts, (1, 2, 3)) == {}


@pytest.mark.parametrize("who", ["root", OTHER])
def test_others_stopping_the_same_cluster_name_never_touch_it(owner_cluster, fake_hosts, shared_env,
                                                              tmp_path, who):
    before = pids(fake_hosts, OWNER)
    assert all(before.values())
    inventory = inventory_for(tmp_path / "inv", None if who == "root" else who, shared_env, 18872,
                              fake_hosts, ENGINE_TIMEOUT=3)
    for task in ("cluster.down", "engines.stop", "engines.restart", "cluster.status", "cluster.down"):
        fab(task, inventory=inventory, key=fake_hosts.client_key)
    assert pids(fake_hosts, OWNER) == before
    status = owner_cluster("cluster.status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("2/2") == 1 and status.stdout.count("1/1") == 1


def test_check_names_a_jupyter_port_taken_by_another_user(owner_cluster, fake_hosts, shared_env, tmp_path):
    inventory = inventory_for(tmp_path / "inv", None, shared_env, 18871, fake_hosts)
    check = fab("cluster.check", inventory=inventory, key=fake_hosts.client_key)
    assert check.returncode == 1
    assert check.stderr.strip() == (f"error: {HOSTS[0]}: JUPYTER_PORT 18871 is taken here by {OWNER}:"
                                    " choose another JUPYTER_PORT in cluster.env")
    own = owner_cluster("cluster.check")  # the owner's own Jupyter is no problem
    assert own.returncode == 0, own.stdout + own.stderr
