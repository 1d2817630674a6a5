"""
Fixtures shared by the tests: fake SSH hosts, inventories for them, and a way
to run ``fab`` as a user would, in a subprocess, from the project folder.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.sshhosts import FakeHosts, why_not_available, write_inventory  # noqa: F401 (for the tests)
from tests.waiting import wait_until
from tests.wheels import SYSTEM_PYTHON, download_wheelhouse

# The tests press Ctrl-C (SIGINT) on the fab processes they start. A shell starts a
# background job (`pytest &`, `nohup pytest &` in a script) with SIGINT ignored, and every
# child inherits that: fab would never see it. A handler of this process's own is the
# default action again in each child it starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PROJECT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).parent / "fab"
CLUSTER_PROGRAMS = ("ipengine", "ipcontroller", "ipp_remote",
                    "jupyter", "ipyparallel", "SCREEN", "screen")


def fab(*args, inventory=None, key=None, timeout=300, env=None):
    """Run ``fab ARGS`` in the project folder (*env*: more environment); returns the CompletedProcess."""
    env = dict(os.environ, COLUMNS="200", **(env or {}))
    if inventory is not None:
        env["CLUSTER_INVENTORY"] = str(inventory)
    identity = ["-i", str(key)] if key else []
    return subprocess.run([str(FAB), *identity, *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def three_host_inventory(folder, fake_hosts, name, port, engine_hosts=(2, 3, 4), **settings):
    """
    An inventory for a master on host1 and two engines on each of *engine_hosts* (host2-host4).

    The cluster name and the profile are both *name*, Jupyter is on *port*, and
    the fake hosts' own known_hosts file is used, never the user's.
    """
    hosts = "[master]\n127.0.2.1\n\n[engines]\n" + "".join(
        f"127.0.2.{n} engines=2\n" for n in engine_hosts)
    return write_inventory(folder, hosts, CLUSTER_ENV=sys.prefix, CLUSTER_NAME=name,
                           IPP_PROFILE=name, JUPYTER_PORT=port,
                           KNOWN_HOSTS=fake_hosts.known_hosts, **settings)


@contextmanager
def fab_for(fake_hosts, inventory):
    """
    ``fab`` on *inventory* as the fake hosts' client, as a function of the task and its
    arguments (`fab`'s keywords too); ``.inventory`` is the folder and ``.settings`` its
    cluster.env as written. The cluster is downed when the block ends (a module's fixture).
    """
    def run(*args, **kwargs):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, **kwargs)
    run.inventory = inventory
    run.settings = (inventory / "cluster.env").read_text()
    try:
        yield run
    finally:
        run("cluster.down")


@pytest.fixture(scope="session")
def fake_hosts():
    """Five fake SSH hosts, 127.0.2.1 to 127.0.2.5, for the whole test session."""
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    with FakeHosts(5) as hosts:
        yield hosts


def with_client(code, profile=None, connect=None, prefix=(), env=None, timeout=120):
    """
    Run *code* in a new Python, after ``c = ipp.Client(profile=PROFILE, timeout=20)`` (or
    after the lines *connect*, which make ``rc``), as a user's program would; returns its
    last line of output, parsed as JSON. *prefix* runs it elsewhere (``ip netns exec NS``).
    """
    head = connect or [f"c = ipp.Client(profile={profile!r}, timeout=20)"]
    program = "\n".join(["import collections, json, os, socket", "import ipyparallel as ipp",
                          *head, code])
    out = subprocess.run([*prefix, sys.executable, "-c", program], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def engines_per_host(profile):
    """Ask the cluster, with ipyparallel's Client, how many engines run on each hostname."""
    return with_client("print(json.dumps(collections.Counter(c[:].apply_sync(socket.gethostname))))",
                       profile)


def engines_by_id(profile):
    """``{engine id: (hostname, pid)}`` as the cluster's engines answer ipyparallel's Client."""
    code = ("def who():\n"
            "    import os, socket\n"
            "    return socket.gethostname(), os.getpid()\n"
            "print(json.dumps(c[:].apply_async(who).get_dict()))\n")
    return {int(i): tuple(v) for i, v in with_client(code, profile).items()}


def status_saying(cluster, text, timeout):
    """``cluster.status`` (run by the fixture *cluster*) once its errors say *text*; a failure,
    with the last one, after *timeout* s (the status tasks take a second or more each)."""
    def saying():
        status = cluster("cluster.status")
        assert text in status.stderr, status.stdout + status.stderr  # what the failure says
        return status
    return wait_until(saying, timeout, f"cluster.status saying {text!r}", interval=2)


def on(engines, hostname):
    """The engines of *engines* (from `engines_by_id`) that run on *hostname*."""
    return {i: v for i, v in engines.items() if v[0] == hostname}


def leftovers(fake_hosts, numbers):
    """Cluster processes and screen sessions still on the given fake hosts."""
    found = {}
    for number in numbers:
        host = fake_hosts.hosts[number - 1]
        procs = [p for p in host.processes() if any(word in p for word in CLUSTER_PROGRAMS)]
        if procs or host.screens():
            found[host.name] = procs + host.screens()
    return found


def nothing_left(fake_hosts, numbers, timeout=15):
    """Wait until not one process is left on the given fake hosts (but their sshd), of any
    name: that proves nothing there can start anything later, which no sleep can prove."""
    def none():
        left = {f"host{n}": procs for n in numbers if (procs := fake_hosts.hosts[n - 1].processes())}
        assert not left, left  # what the failure says
        return True
    wait_until(none, timeout, f"no process left on the hosts {numbers}")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """The cluster's packages as wheels for the hosts' Python: those `tests.suite` downloaded
    for every shard (``IPP_TEST_WHEELHOUSE``), or downloaded now into a temporary folder."""
    if subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip"]).returncode != 0:
        pytest.skip("needs Debian's python3 and python3-venv")
    if os.environ.get("IPP_TEST_WHEELHOUSE"):
        return Path(os.environ["IPP_TEST_WHEELHOUSE"])
    return download_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def shared_env(fake_hosts, wheelhouse):
    """A CLUSTER_ENV every user can run, made by root with cluster.install on host1."""
    folder = tempfile.mkdtemp(prefix="ipp-env-")
    os.chmod(folder, 0o755)
    env = os.path.join(folder, "env")
    inventory = write_inventory(
        Path(folder) / "inv", "[master]\n127.0.2.1\n", CLUSTER_ENV=env,
        KNOWN_HOSTS=fake_hosts.known_hosts)
    result = fab("cluster.install", f"--wheelhouse={wheelhouse}", f"--python={SYSTEM_PYTHON}",
                 inventory=inventory, key=fake_hosts.client_key, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    yield env
    subprocess.run(["rm", "-rf", folder])


@contextmanager
def users(*names, shell="/bin/bash"):
    """Users with 0700 homes of their own (*shell* may be a ``{name: shell}`` dict); removed,
    with their processes, after."""
    for name in names:
        login = shell.get(name, "/bin/bash") if isinstance(shell, dict) else shell
        _remove_user(name)  # left by a run that was killed before its clean-up
        subprocess.run(["useradd", "-m", "-s", login, name], check=True)
        subprocess.run(["usermod", "-p", "*", name], check=True)  # no password, not locked: keys work
        os.chmod(pwd.getpwnam(name).pw_dir, 0o700)
    try:
        yield names
    finally:
        for name in names:
            _remove_user(name)


def _remove_user(name):
    """Remove the user *name*, its home, its processes and the folders named after it that
    userdel leaves: screen's sessions (/run/screen/S-NAME) and pytest's (/tmp/pytest-of-NAME).
    A new user of that name (another uid) could use neither: screen starts no session in a
    folder that is not the user's, and pytest errs on every tmp_path (seen in CI, on a
    machine where an earlier run's user had another uid)."""
    subprocess.run(["pkill", "-KILL", "-u", name], stderr=subprocess.DEVNULL)
    subprocess.run(["userdel", "-r", name], stderr=subprocess.DEVNULL)
    for folder in (f"/run/screen/S-{name}", f"/var/run/screen/S-{name}",
                   os.path.join(tempfile.gettempdir(), f"pytest-of-{name}")):
        shutil.rmtree(folder, ignore_errors=True)
