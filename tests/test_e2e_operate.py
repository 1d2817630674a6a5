"""
End to end: operating a cluster on fake SSH hosts (run, info, check, logs, tunnel).
Host 1 is the master; hosts 2-4 run two engines each.
"""

import importlib.metadata
import os
import platform
import re
import signal
import subprocess
import urllib.request

import pytest

from tests.conftest import FAB, PROJECT, fab, three_host_inventory

NAME = "ops"
PORT = 18841


@pytest.fixture(scope="module")
def cluster(fake_hosts, tmp_path_factory):
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT)

    def run(*args, **kwargs):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, **kwargs)
    run.inventory = inventory
    yield run
    run("cluster.down")


def sections(output):
    """Split ``fab cluster.run``/``logs`` output into {host: text under its heading}."""
    parts = re.split(r"^(\S+) ─+$", output, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_run_prints_each_hosts_output_under_its_name(cluster):
    result = cluster("cluster.run", "hostname")
    assert result.returncode == 0, result.stderr
    assert {h: t.split() for h, t in sections(result.stdout).items()} == {
        f"127.0.2.{n}": [f"host{n}"] for n in (1, 2, 3, 4)}
    engines = cluster("cluster.run", "--role=engines", "hostname")
    assert sorted(sections(engines.stdout)) == ["127.0.2.2", "127.0.2.3", "127.0.2.4"]
    named = cluster("cluster.run", "--hosts=127.0.2.1,127.0.2.3", "hostname")
    assert sorted(sections(named.stdout)) == ["127.0.2.1", "127.0.2.3"]


def test_run_names_the_hosts_where_the_command_failed(cluster):
    result = cluster("cluster.run", 'test "$(hostname)" != host3 || { echo bad >&2; exit 3; }')
    assert result.returncode == 1
    assert result.stderr.strip() == "error: 127.0.2.3: exit 3: bad"
    unknown = cluster("cluster.run", "--hosts=node9", "true")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "error: --hosts=node9: not in the inventory: node9")


def test_info_has_a_row_per_host(cluster):
    result = cluster("cluster.info")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ 127.0.2.")]
    assert len(rows) == 4
    version = importlib.metadata.version("ipyparallel")
    for row in rows:
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells[2] == str(os.cpu_count()) and cells[8:10] == [platform.python_version(), version]
        assert cells[3] == "" and cells[4].endswith("GiB") and len(cells[6].split()) == 3  # no GPUs


def test_check_passes_then_names_the_host_whose_ipyparallel_differs(cluster, fake_hosts, tmp_path):
    assert cluster("cluster.check").returncode == 0
    dist = importlib.metadata.distribution("ipyparallel")
    metadata = dist._path / "METADATA"
    version = dist.version
    changed = tmp_path / "METADATA"
    changed.write_text(metadata.read_text().replace(f"Version: {version}", "Version: 8.9.9", 1))
    host3 = fake_hosts.hosts[2]
    host3.run(f"mount --bind {changed} {metadata}")  # only host3 sees it: its own mount namespace
    try:
        result = cluster("cluster.check")
        up = cluster("cluster.up")
    finally:
        host3.run(f"umount {metadata}")
    assert result.returncode == 1
    message = (f"error: 127.0.2.3: ipyparallel 8.9.9 here but {version} on the master: "
               "install the same version everywhere (fab cluster.install)")
    assert result.stderr.strip() == message
    assert up.returncode == 1 and message in up.stderr
    assert "│ 127.0.2.2 │ 2" in up.stdout
    skipped = next(line for line in up.stdout.splitlines() if line.startswith("│ 127.0.2.3 "))
    assert [cell.strip() for cell in skipped.split("│")[1:6]] == ["127.0.2.3", "", "", "", "skipped"]


def test_logs_show_each_session_under_its_host(cluster):
    assert cluster("cluster.up").returncode == 0
    result = cluster("cluster.logs", "--lines=3")
    assert result.returncode == 0, result.stderr
    found = {host: re.findall(r"^=== (\S+)$", text, flags=re.M)
             for host, text in sections(result.stdout).items()}
    assert found == {"127.0.2.1": ["ops-controller", "ops-jupyter"],
                     **{f"127.0.2.{n}": ["ops-engine-1", "ops-engine-2", "ops-engines"] for n in (2, 3, 4)}}
    masters = cluster("cluster.logs", "--role=master")
    assert list(sections(masters.stdout)) == ["127.0.2.1"]


def test_tunnel_reaches_jupyter_on_the_next_free_port(cluster, fake_hosts):
    assert cluster("cluster.up").returncode == 0
    env = dict(os.environ, CLUSTER_INVENTORY=str(cluster.inventory))
    tunnel = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.tunnel"],
                              cwd=PROJECT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = tunnel.stdout.readline().strip()
        match = re.fullmatch(r"Jupyter: http://127\.0\.0\.1:(\d+)/\?token=(\w+)", line)
        assert match, line
        port, token = int(match[1]), match[2]
        assert port != PORT  # Jupyter itself holds PORT on this shared loopback
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=20) as response:
            assert response.status == 200
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)
