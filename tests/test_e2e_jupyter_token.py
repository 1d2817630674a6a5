"""
End to end: Jupyter's token goes to this user's Jupyter alone. Another user of the
master listens on the cluster's JUPYTER_PORT (while the cluster is stopped, and while
its Jupyter runs on another port) and records what reaches it: the tasks that read the
token and check Jupyter (`cluster.status`, `master.url`, `cluster.tunnel`, `master.start`)
send it nothing. Each start of Jupyter has a token of its own; a stop removes it.
"""

import os
import pwd
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from tasks.remote.shared import loopback
from tests.conftest import FAB, PROJECT, fab, users, write_inventory
from tests.spy import spy
from tests.waiting import wait_until

NAME = "tokenspy"
PORT, OTHER_PORT, LOCAL_PORT = 18891, 18892, 18893
SPY = "ippspy"
#: The master's token file (host1's run directory, in root's home).
TOKEN_FILE = f"{pwd.getpwuid(0).pw_dir}/.ipp-cluster/{NAME}/host1/jupyter.token"
#: Every task that reads the token or checks that Jupyter answers.
TASKS = ("cluster.status", "master.status", "master.url", "cluster.tunnel", "master.start")


@pytest.fixture(scope="module")
def spy_user():
    with users(SPY):
        yield SPY


@pytest.fixture
def cluster(fake_hosts, tmp_path):
    """fab on a master on host1 (one engine on host2) with Jupyter on *port*; stopped after."""
    def run(*args, port=PORT, hold=False):
        inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=1\n",
                                    CLUSTER_NAME=NAME, IPP_PROFILE=NAME, JUPYTER_PORT=port,
                                    KNOWN_HOSTS=fake_hosts.known_hosts, ENGINE_TIMEOUT=60,
                                    CLUSTER_ENV=sys.prefix)
        if hold:  # a task that holds until Ctrl-C: its process
            return subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), *args], cwd=PROJECT,
                                    env=dict(os.environ, CLUSTER_INVENTORY=str(inventory)),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    yield run
    run("cluster.down")


def started_token(result, port):
    """The token of the URL `master.start` (or `master.url`) printed last, on *port* (the URL's
    host is checked in tests/test_e2e_lifecycle.py)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return re.fullmatch(rf"http://[\w.]+:{port}/\?token=(\w+)", result.stdout.splitlines()[-1])[1]


def read_token_file():
    with open(TOKEN_FILE) as file:
        return file.read().strip()


def test_another_users_listener_on_a_stopped_clusters_port_hears_nothing(cluster, spy_user, tmp_path):
    token = started_token(cluster("master.start"), PORT)
    assert cluster("master.stop").returncode == 0
    with spy(spy_user, PORT, tmp_path) as other:
        results = {task: cluster(task) for task in TASKS}
        heard = other.heard()
    assert token.encode() not in heard and heard == b""
    for task, result in results.items():
        assert result.returncode != 0 and "token=" not in result.stdout, (task, result.stdout)
    assert results["master.url"].stderr == ("error: 127.0.2.1: Jupyter is not running: fab master.start "
                                            "starts it\n")
    assert results["master.start"].stderr == (f"error: 127.0.2.1: JUPYTER_PORT {PORT} is taken here by "
                                              f"{SPY}: choose another JUPYTER_PORT in cluster.env, then fab "
                                              "master.stop and fab master.start\n")


def test_another_users_listener_on_jupyter_port_while_ours_runs_on_another_hears_nothing(
        cluster, spy_user, tmp_path):
    token = started_token(cluster("master.start", port=OTHER_PORT), OTHER_PORT)
    with spy(spy_user, PORT, tmp_path) as other:
        results = {task: cluster(task) for task in TASKS[:-1]}
        heard = other.heard()
    assert token.encode() not in heard and heard == b""
    assert results["master.url"].stderr == (f"error: 127.0.2.1: Jupyter runs on port {OTHER_PORT}, not on "
                                            f"JUPYTER_PORT={PORT}: run fab master.stop, then start it again\n")
    assert started_token(cluster("master.url", port=OTHER_PORT), OTHER_PORT) == token


def test_each_start_of_jupyter_has_a_new_token_and_the_stop_removes_it(cluster):
    first = started_token(cluster("master.start"), PORT)
    assert read_token_file() == first
    assert started_token(cluster("master.start"), PORT) == first  # still running: the same
    assert cluster("master.stop").returncode == 0
    with pytest.raises(FileNotFoundError):
        read_token_file()
    second = started_token(cluster("master.start"), PORT)
    assert second != first and read_token_file() == second
    assert cluster("master.stop").returncode == 0


def ask(port, token, timeout=20):
    """The status of Jupyter's /api/status on this machine's 127.0.0.1:*port*, with *token*."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout) as answer:
        return answer.status


def test_a_held_tunnel_forwards_nothing_to_another_users_listener(cluster, spy_user, fake_hosts, tmp_path):
    """Jupyter ends without a stop (a crash, its nanny gone too): its token is still valid for
    a Jupyter started again on that port, and the browser keeps sending it through the tunnel."""
    token = started_token(cluster("master.start"), PORT)
    tunnel = cluster("cluster.tunnel", f"--port={LOCAL_PORT}", hold=True)
    try:
        assert tunnel.stdout.readline() == f"Jupyter: http://127.0.0.1:{LOCAL_PORT}/?token={token}\n"
        assert ask(LOCAL_PORT, token) == 200
        master = fake_hosts.hosts[0]
        pids = master.run(f"pgrep -f '^[^ ]*python[0-9.]* [^ ]*/ipp_remote shared[.]nanny jupyter '; "
                          f"pgrep -f '[j]upyter-server .*--port={PORT}'").split()
        assert len(pids) == 2
        master.run(f"kill -9 {' '.join(pids)}")
        wait_until(lambda: not loopback.listener_uids(PORT), 30, "Jupyter's port to be free")
        with spy(spy_user, PORT, tmp_path) as other:
            with pytest.raises(OSError):  # refused, or (what reached nobody's listener) no answer
                ask(LOCAL_PORT, token, timeout=5)
            heard = other.heard()
        assert token.encode() not in heard and heard == b""
        assert tunnel.poll() is None  # it holds on: Jupyter may come back
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)
    warning = (f"warning: a connection to 127.0.0.1:{LOCAL_PORT} was refused: 127.0.2.1: 127.0.0.1:{PORT} "
               f"is held by {SPY}, not by this user's Jupyter\n")
    assert warning in tunnel.stderr.read()
