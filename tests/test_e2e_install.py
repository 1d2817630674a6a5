"""
End to end: ``cluster.install`` from a wheelhouse, with no index, into a fresh
CLUSTER_ENV on fake hosts, then a cluster brought up with that environment.
"""

from tests.conftest import SYSTEM_PYTHON, engines_per_host, fab, write_inventory


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
