"""
End to end: Jupyter's token goes to this user's Jupyter alone. Another user of the
master listens on the cluster's JUPYTER_PORT (while the cluster is stopped, and while
its Jupyter runs on another port) and records what reaches it: the tasks that read the
token and check Jupyter (`cluster.status`, `master.url`, `cluster.tunnel`, `master.start`)
send it nothing. Each start of Jupyter has a token of its own; a stop removes it.
"""

import pwd
import re
import sys

import pytest

from tests.conftest import fab, users, write_inventory
from tests.spy import spy

NAME = "tokenspy"
PORT, OTHER_PORT = 18891, 18892
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
    def run(*args, port=PORT):
        inventory = write_inventory(tmp_path / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=1\n",
                                    CLUSTER_NAME=NAME, IPP_PROFILE=NAME, JUPYTER_PORT=port,
                                    KNOWN_HOSTS=fake_hosts.known_hosts, ENGINE_TIMEOUT=60,
                                    CLUSTER_ENV=sys.prefix)
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
