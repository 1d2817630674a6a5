"""
End to end: a cluster whose hosts share no home. Each engine host logs in as a
user of its own, with a home of its own that no other user can read; the
controller's connection file goes from the master to each of them.
"""

import os
import pwd
import subprocess

import pytest

from tests.conftest import engines_per_host, fab, leftovers, users, write_inventory

USERS = ("ippuser2", "ippuser3")


@pytest.fixture(scope="module")
def engine_users():
    """Two users with 0700 homes of their own."""
    with users(*USERS) as names:
        yield names


def test_engines_of_other_users_get_the_connection_file_and_register(fake_hosts, engine_users, shared_env,
                                                                    tmp_path):
    hosts = "[master]\n127.0.2.1\n[engines]\nippuser2@127.0.2.2 engines=2\nippuser3@127.0.2.3 engines=1\n"
    inventory = write_inventory(tmp_path / "inv", hosts, CLUSTER_ENV=shared_env, CLUSTER_NAME="nsh",
                                IPP_PROFILE="nsh", JUPYTER_PORT=18861, SHARED_HOME="no",
                                KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(task):
        return fab(task, inventory=inventory, key=fake_hosts.client_key)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert engines_per_host("nsh") == {"host2": 2, "host3": 1}
        master_file = os.path.expanduser("~/.ipython/profile_nsh/security/ipcontroller-engine.json")
        for user in engine_users:
            home = pwd.getpwnam(user).pw_dir
            copy = f"{home}/.ipython/profile_nsh/security/ipcontroller-engine.json"
            assert open(copy).read() == open(master_file).read()
            assert oct(os.stat(copy).st_mode & 0o777) == "0o600"
            assert os.stat(copy).st_uid == pwd.getpwnam(user).pw_uid
        other = subprocess.run(["su", "ippuser2", "-c", f"cat {pwd.getpwnam('ippuser3').pw_dir}/.ipython"
                                "/profile_nsh/security/ipcontroller-engine.json"], capture_output=True)
        assert other.returncode != 0  # one user cannot read another's copy

        restart = run("engines.restart")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert engines_per_host("nsh") == {"host2": 2, "host3": 1}
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3)) == {}
