"""
End to end: ``cluster.install`` from a wheelhouse, with no index, into a fresh
CLUSTER_ENV on fake hosts, then a cluster brought up with that environment.
"""

import pwd
from pathlib import Path

from tests.conftest import SYSTEM_PYTHON, engines_per_host, fab, users, write_inventory

PLAIN = "ipphomeenv"  # a user who is not root


def test_install_offline_then_bring_a_cluster_up_with_it(fake_hosts, wheelhouse, tmp_path):
    env = tmp_path / "cluster-env"
    inventory = write_inventory(
        tmp_path / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=1\n127.0.2.3 engines=1\n",
        CLUSTER_ENV=env, CLUSTER_NAME="inst", IPP_PROFILE="inst", JUPYTER_PORT=18851,
        KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, timeout=900)
    first = run("cluster.install", f"--wheelhouse={wheelhouse}", f"--python={SYSTEM_PYTHON}")
    assert first.returncode == 0, first.stdout + first.stderr
    rows = [line.split("│")[1:-1] for line in first.stdout.splitlines() if line.startswith("│ 127.")]
    # The hosts share this file system: one creates the environment, the others find it.
    assert sorted(cells[2].strip() for cells in rows) == ["no", "no", "yes"]
    assert {cells[3].strip() for cells in rows} == {"9.2.0"}
    assert (env / "bin" / "ipengine").exists()

    again = run("cluster.install", f"--wheelhouse={wheelhouse}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count(" no ") >= 3 and " yes " not in again.stdout
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert engines_per_host("inst") == {"host2": 1, "host3": 1}
        started = fake_hosts.hosts[1].run("pgrep -af '[b]in/ipengine'")
        assert f"{env}/bin/ipengine" in started
    finally:
        assert run("cluster.down").returncode == 0


def test_a_plain_user_installs_cluster_env_under_each_hosts_home_and_brings_a_cluster_up(
        fake_hosts, wheelhouse, tmp_path):
    """``CLUSTER_ENV=~/ipp-env`` for a user who is not root, who can write only under their
    home: ``cluster.install`` makes it there (the ``~`` expanded by each host, with that
    user's home), with the hook that gives each of its Pythons a lasting routing id, and
    ``cluster.up`` runs the controller and the engines from it."""
    with users(PLAIN):
        home = Path(pwd.getpwnam(PLAIN).pw_dir)
        inventory = write_inventory(
            tmp_path / "inv", f"[master]\n{PLAIN}@127.0.2.1\n[engines]\n{PLAIN}@127.0.2.2 engines=1\n",
            CLUSTER_ENV="~/ipp-env", CLUSTER_NAME="home", IPP_PROFILE="home", JUPYTER_PORT=18852,
            KNOWN_HOSTS=fake_hosts.known_hosts)

        def run(*args):
            return fab(*args, inventory=inventory, key=fake_hosts.client_key, timeout=900)
        installed = run("cluster.install", f"--wheelhouse={wheelhouse}", f"--python={SYSTEM_PYTHON}")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        env = home / "ipp-env"
        assert (env / "bin" / "ipengine").stat().st_uid == pwd.getpwnam(PLAIN).pw_uid
        hooked = fake_hosts.hosts[0].run(
            f"cd {home} && runuser -u {PLAIN} -- {env}/bin/python -c 'import ipyparallel as ipp; print(ipp.Client.__init__.ipp_cluster)'")
        assert hooked.strip() == "True"
        try:
            up = run("cluster.up")
            assert up.returncode == 0, up.stdout + up.stderr
            assert f"{env}/bin/python" in fake_hosts.hosts[0].run(f"pgrep -u {PLAIN} -af '/ipp_remote master[.]controller '")
            assert f"{env}/bin/ipengine" in fake_hosts.hosts[1].run(f"pgrep -u {PLAIN} -af '[b]in/ipengine'")
        finally:
            assert run("cluster.down").returncode == 0
