"""
End to end on a network of its own (`tests.testnet`): three hosts and a laptop, each
with its own loopback; the laptop reaches only the hosts' SSH ports. Host 1 is the
master, hosts 2 and 3 run two engines each.

What the shared-network fake hosts cannot show: fab run on the master with
``localhost`` as the master; a controller that listens only where the engines reach
it; Jupyter and the controller out of the laptop's reach but through SSH.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager

import pytest

from tests import testnet
from tests.conftest import FAB, PROJECT, with_client, write_inventory
from tests.sshhosts import FakeHosts, why_not_available

ENGINES = {"host2": 2, "host3": 2}
#: The lines cluster.connect prints before its ipp.Client: a routing id kept across reconnections.
LASTING = ["import uuid, zmq, ipyparallel as ipp",
           "def lasting(): context = zmq.Context(); context.routing_id = uuid.uuid4().bytes;"
           " return context  # results in flight at a controller restart still reach the client"]


@pytest.fixture(scope="module")
def network():
    """The laptop and three fake hosts on a network of their own, for this module."""
    reason = why_not_available() or testnet.why_not_available()
    if reason:
        pytest.skip(reason)
    with testnet.TestNetwork(3, f"ipp{os.getpid()}") as net, FakeHosts(3, network=net) as hosts, \
            tempfile.TemporaryDirectory(prefix="laptop-home-") as home:
        net.hosts, net.laptop_home = hosts, home  # fab's files on the laptop: never the runner's
        yield net


def inventory(net, folder, master, name, port, **settings):
    engines = "".join(f"{net.address(host)} engines={count}\n" for host, count in ENGINES.items())
    return write_inventory(folder, f"[master]\n{master}\n[engines]\n{engines}",
                           CLUSTER_ENV=sys.prefix, CLUSTER_NAME=name, IPP_PROFILE=name,
                           JUPYTER_PORT=port, KNOWN_HOSTS=net.hosts.known_hosts, **settings)


def fab_on(net, where, inventory, *args, **popen):
    """``fab ARGS`` from the laptop's network, or on the master (in all of host1's namespaces)."""
    if where == "master":
        enter = ["nsenter", "-t", str(net.hosts.hosts[0].init_pid), "-n", "-m", "-u", "-p",
                 f"--wd={PROJECT}"]
    else:
        enter = ["ip", "netns", "exec", net.namespace(testnet.LAPTOP)]
    env = dict(os.environ, CLUSTER_INVENTORY=str(inventory), COLUMNS="200")
    if where != "master":
        env["HOME"] = net.laptop_home
    argv = [*enter, str(FAB), "-i", str(net.hosts.client_key), *args]
    if popen:
        return subprocess.Popen(argv, cwd=PROJECT, env=env, text=True, **popen)
    return subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)


def listeners(net):
    """``{address:port}`` of the master's listening TCP sockets, but sshd's, with their program."""
    out = net.hosts.hosts[0].run("ss -ltnpH")
    found = {}
    for line in out.splitlines():
        local, program = line.split()[3], re.search(r'users:\(\("([^"]+)"', line)
        if program and program[1] != "sshd":
            found[local] = program[1]
    return found


def addresses(found):
    """The addresses of *found* (from `listeners`): never a wildcard such as 0.0.0.0 or *."""
    return {local.rsplit(":", 1)[0] for local in found}


def engine_counts(net, lines, home):
    """Run the lines ``cluster.connect`` printed, in the laptop's network, then a task on
    every engine: ``{hostname: engines}``. The tunnel checks the master's key in
    *home*'s ~/.ssh/known_hosts, where fab recorded it (the fake hosts' file here)."""
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(net.hosts.known_hosts, home / ".ssh" / "known_hosts")
    return with_client("print(json.dumps(collections.Counter(rc[:].apply_sync(socket.gethostname))))",
                       connect=lines, prefix=["ip", "netns", "exec", net.namespace(testnet.LAPTOP)],
                       env=dict(os.environ, HOME=str(home)))


def test_fab_on_the_master_with_localhost_as_master_brings_remote_engines_up(network, tmp_path):
    inv = inventory(network, tmp_path / "inv", "localhost", "netlocal", 18861)
    try:
        up = fab_on(network, "master", inv, "cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        for host, count in ENGINES.items():
            assert re.search(rf"│ {network.address(host)} +│ {count} +│ {count} +│ [0-9]+ +│ ok", up.stdout)
        assert addresses(listeners(network)) == {network.address("host1"), "127.0.0.1"}
    finally:
        down = fab_on(network, "master", inv, "cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr


def test_from_the_laptop_only_ssh_reaches_the_cluster_and_connect_and_tunnel_do(network, tmp_path):
    inv = inventory(network, tmp_path / "inv", network.address("host1"), "netlaptop", 18862)
    master = network.address("host1")
    try:
        up = fab_on(network, "laptop", inv, "cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        found = listeners(network)
        assert addresses(found) == {master, "127.0.0.1"}
        assert found["127.0.0.1:18862"].startswith("jupyter")  # Jupyter: the loopback alone
        controller = [local for local in found if local.startswith(f"{master}:")]
        assert {found[local] for local in controller} == {"ipcontroller"}
        for local in controller:  # each in the engines' reach, none in the laptop's
            port = local.rsplit(":", 1)[1]
            assert network.connect("host3", master, port) == "open"
            assert network.connect(testnet.LAPTOP, master, port) == "refused"
        assert network.connect(testnet.LAPTOP, master, 18862) == "refused"

        connect = fab_on(network, "laptop", inv, "cluster.connect")
        assert connect.returncode == 0, connect.stdout + connect.stderr
        path = os.path.join(network.laptop_home, ".ipp-cluster/netlaptop/client/ipcontroller-client.json")
        assert os.stat(path).st_mode & 0o777 == 0o600
        lines = connect.stdout.strip().splitlines()[1:]
        assert lines == [*LASTING, f"rc = ipp.Client({path!r}, sshserver='root@{master}', "
                         f"sshkey={str(network.hosts.client_key)!r}, paramiko=True,"
                         " context=lasting(), timeout=30)"]
        assert engine_counts(network, lines, tmp_path / "home") == ENGINES

        with holding(network, inv, "cluster.tunnel") as first:
            local_port, token = re.search(r"127\.0\.0\.1:(\d+)/\?token=(\w+)", first[0]).groups()
            get = ("import urllib.request, sys; r = urllib.request.Request(sys.argv[1], "
                   "headers={'Authorization': 'token ' + sys.argv[2]}); "
                   "print(urllib.request.urlopen(r, timeout=10).status)")
            out = network.run(testnet.LAPTOP, sys.executable, "-c", get,
                              f"http://127.0.0.1:{local_port}/api/status", token,
                              capture_output=True, text=True, timeout=60)
            assert out.stdout.strip() == "200", out.stderr
    finally:
        down = fab_on(network, "laptop", inv, "cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr


def test_connect_with_encryption_forwards_the_controllers_ports_itself(network, tmp_path):
    inv = inventory(network, tmp_path / "inv", network.address("host1"), "netcurve", 18863,
                    ENCRYPT="yes")
    try:
        up = fab_on(network, "laptop", inv, "cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        with holding(network, inv, "cluster.connect", lines=4) as printed:
            path = os.path.join(network.laptop_home,
                                ".ipp-cluster/netcurve/client/ipcontroller-client.json")
            assert printed[1:] == [*LASTING, f"rc = ipp.Client({path!r}, context=lasting(), timeout=30)"]
            with open(path) as file:
                assert json.load(file)["curve_serverkey"]  # still encrypted, end to end
            assert engine_counts(network, printed[1:], tmp_path / "home") == ENGINES
        assert not os.path.exists(path)  # it pointed at the forwards, gone with them
    finally:
        down = fab_on(network, "laptop", inv, "cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr


@contextmanager
def holding(net, inv, task, lines=1, timeout=120):
    """Run a fab *task* that holds until Ctrl-C, from the laptop; yields its first *lines*,
    or fails with its stderr if they do not come within *timeout* s. After Ctrl-C the task
    must end by itself, cleanly (Fabric used to raise its tunnels' errors exactly there)."""
    process = fab_on(net, "laptop", inv, task, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(
        process.stdout.readline().strip() for _ in range(lines)), daemon=True)
    reader.start()
    reader.join(timeout)
    try:
        if len(printed) < lines or not all(printed):
            process.kill()
            pytest.fail(f"fab {task} printed {printed} within {timeout} s; stderr: "
                        f"{process.communicate(timeout=30)[1]}")
        yield printed
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr


def test_the_laptop_reaches_only_ssh_over_ipv6_too(network):
    """The firewall is no IPv4 one only: a listener on every address of host1, reached from
    the laptop and from host3, over IPv4 and IPv6."""
    listen = ("import socket, time; s = socket.create_server(('::', 18999), family=socket.AF_INET6,"
              " dualstack_ipv6=True); print('ready', flush=True); time.sleep(60)")
    server = subprocess.Popen(["ip", "netns", "exec", network.namespace("host1"), sys.executable,
                               "-c", listen], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        for address in (network.address("host1"), network.address6("host1")):
            assert network.connect("host3", address, 18999) == "open"
            assert network.connect(testnet.LAPTOP, address, 18999) == "refused"
        assert network.connect(testnet.LAPTOP, network.address("host1"), 22) == "open"  # sshd: IPv4
    finally:
        server.kill()
        server.wait()
