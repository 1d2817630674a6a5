"""
End to end: the common mistakes of a first day, tried as a new user would on fake
hosts. Each gives, within seconds, one line saying what happened, on which host and
what to do; the tables agree with it and the exit code matches. Host 1 is the master.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import FAB, PROJECT, fab, three_host_inventory, write_inventory
from tests.waiting import wait_until

NAME = PROFILE = "mistakes"
PORT = 18851


@pytest.fixture
def cluster(fake_hosts, tmp_path):
    """fab on an inventory of master host1 and engines on host2-4 (ENGINE_TIMEOUT=120); downed after."""
    inventory = three_host_inventory(tmp_path / "inv", fake_hosts, NAME, PORT, ENGINE_TIMEOUT=120,
                                     CONNECT_TIMEOUT=3)

    def run(*args, **kwargs):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, **kwargs)
    run.inventory = inventory
    yield run
    run("cluster.down")


def row(out, first):
    """The cells of the table row that starts with *first*."""
    line = next(line for line in out.splitlines() if line.startswith(f"│ {first} "))
    return [cell.strip() for cell in line.split("│")[1:-1]]


def sshd_logs(fake_hosts):
    return [(host.keys / f"{host.name}.sshd.log").read_text() for host in fake_hosts.hosts]


@pytest.fixture
def listener():
    """Another program on the master's loopback, on the cluster's JUPYTER_PORT."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", PORT))
        sock.listen()
        yield sock


def test_jupyter_port_in_use_is_refused_before_anything_starts(cluster, listener, fake_hosts):
    started = time.monotonic()
    up = cluster("cluster.up")
    assert time.monotonic() - started < 60  # ENGINE_TIMEOUT is 120
    assert up.returncode == 1 and "http://" not in up.stdout
    assert up.stderr == (f"error: 127.0.2.1: JUPYTER_PORT {PORT} is taken here by root: "
                         "choose another JUPYTER_PORT in cluster.env\n")
    assert fake_hosts.hosts[0].screens() == []


def test_jupyter_that_exits_at_start_is_noticed_at_once_and_gives_no_url(cluster, listener):
    started = time.monotonic()
    start = cluster("master.start")
    assert time.monotonic() - started < 60  # ENGINE_TIMEOUT is 120
    reason = (f"Jupyter exited: ERROR: the Jupyter server could not be started because port {PORT}"
              f" is not available. (its log: ~/.ipp-cluster/{NAME}/host1/{NAME}-jupyter.log)")
    assert (start.returncode, start.stderr) == (1, f"error: 127.0.2.1: {reason}\n")
    assert row(start.stdout, "127.0.2.1")[:4] == ["127.0.2.1", "failed", "started", "FAILED"]
    assert "http://" not in start.stdout
    for task in ("master.url", "cluster.tunnel"):
        result = cluster(task)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "error: 127.0.2.1: Jupyter is not running: fab master.start starts it\n"


@pytest.mark.parametrize("args, message", [
    (("cluster.logs", "--lines=abc"), "error: --lines=abc: must be a whole number from 1 to 100000"),
    (("cluster.logs", "--lines=-3"), "error: --lines=-3: must be a whole number from 1 to 100000"),
    (("cluster.tunnel", "--port=abc"), "error: --port=abc: must be a whole number from 1 to 65535"),
    (("cluster.tunnel", "--port=70000"), "error: --port=70000: must be a whole number from 1 to 65535"),
    (("cluster.run", "--role=engine", "true"), "error: --role=engine: must be master or engines"),
    (("cluster.logs", "--hosts=nohost"), "error: --hosts=nohost: not in the inventory: nohost"),
])
def test_a_bad_option_is_one_line_exit_2_and_no_host_contacted(cluster, fake_hosts, args, message):
    before = sshd_logs(fake_hosts)
    result = cluster(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")
    assert sshd_logs(fake_hosts) == before


def test_a_misspelled_cluster_env_is_named_with_the_one_that_exists(fake_hosts, tmp_path):
    typo = sys.prefix[:-2] + sys.prefix[-1] + sys.prefix[-2]  # .../.venv -> .../.vnee
    inventory = write_inventory(tmp_path, "[master]\n127.0.2.1\n[engines]\n127.0.2.2\n",
                                CLUSTER_ENV=typo, KNOWN_HOSTS=fake_hosts.known_hosts)
    check = fab("cluster.check", inventory=inventory, key=fake_hosts.client_key)
    line = f"CLUSTER_ENV {typo} does not exist, but {sys.prefix} does: correct CLUSTER_ENV in cluster.env"
    assert check.returncode == 1
    assert check.stderr == f"error: 127.0.2.1: {line}\nerror: 127.0.2.2: {line}\n"
    assert row(check.stdout, "127.0.2.1")[1] == row(check.stdout, "127.0.2.2")[1] == "not ready"


def test_a_host_left_out_has_its_row_and_a_failed_login_names_user_and_keys(cluster, fake_hosts,
                                                                             tmp_path):
    hosts = cluster.inventory / "hosts"
    hosts.write_text(hosts.read_text() + "hots5 engines=1\n")
    up = cluster("cluster.up", env={"HOME": str(tmp_path)})  # no ~/.ssh keys but -i's, no agent
    assert up.returncode == 1
    reason = ("unreachable: unknown host name 'hots5': not in DNS, /etc/hosts or ~/.ssh/config;"
              " check the inventory's hosts file")
    assert up.stderr == f"error: hots5: {reason}\n"
    assert row(up.stdout, "hots5")[:5] == ["hots5", "", "", "", "unreachable"]
    assert reason.startswith(row(up.stdout, "hots5")[5])  # a long detail wraps in the table
    assert row(up.stdout, "total") == ["total", "6", "6", "", "FAILED", "3 of 4 hosts as expected"]
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    status = fab("engines.status", inventory=cluster.inventory, key=wrong,
                 env={"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""})
    assert status.returncode == 1
    assert f"error: 127.0.2.2: auth failed: root@127.0.2.2, keys tried: {wrong}\n" in status.stderr
    assert row(status.stdout, "127.0.2.2")[2] == "no login"


def test_rows_come_in_the_inventorys_order(cluster):
    (cluster.inventory / "hosts").write_text(
        "[master]\n127.0.2.1\n[engines]\n127.0.2.4 engines=1\n127.0.2.2 engines=1\n127.0.2.3 engines=1\n")
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stderr
    status = cluster("cluster.status")
    for out in (up.stdout, status.stdout):
        hosts = [line.split("│")[1].strip() for line in out.splitlines()
                 if line.startswith("│ 127.0.2.") and line.split("│")[1].strip() != "127.0.2.1"]
        assert hosts == ["127.0.2.4", "127.0.2.2", "127.0.2.3"]


def test_jupyter_port_changed_while_running_and_a_stopped_cluster_say_so(cluster):
    assert cluster("master.start").returncode == 0
    env = cluster.inventory / "cluster.env"
    env.write_text(env.read_text().replace(f"JUPYTER_PORT={PORT}", f"JUPYTER_PORT={PORT + 1}"))
    url = cluster("master.url")
    assert (url.returncode, url.stdout) == (1, "")
    assert url.stderr == (f"error: 127.0.2.1: Jupyter runs on port {PORT}, not on JUPYTER_PORT="
                          f"{PORT + 1}: run fab master.stop, then start it again\n")
    assert cluster("cluster.down").returncode == 0
    status = cluster("cluster.status")
    assert (status.returncode, status.stdout) == (3, "")
    assert status.stderr == (f"the cluster '{NAME}' is stopped: nothing of it runs on any host "
                             "(fab cluster.up starts it)\n")


def test_ctrl_c_during_up_says_what_started_and_how_to_stop_it(cluster, fake_hosts):
    env = dict(os.environ, CLUSTER_INVENTORY=str(cluster.inventory), COLUMNS="200")
    up = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.up"], cwd=PROJECT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: up.poll() is not None or any("engine" in s for s in fake_hosts.hosts[1].screens()),
               60, "the engines' screen on 127.0.2.2 or cluster.up ended", interval=0.02)
    assert up.poll() is None, up.communicate()
    up.send_signal(signal.SIGINT)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 130
    assert err == ("interrupted: the master had started and the engines were starting; "
                   "fab cluster.down stops what started\n")
    assert cluster("cluster.down").returncode == 0
