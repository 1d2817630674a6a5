"""
End to end behind a firewall (`tests.testnet`: three hosts and a laptop on a network of their
own), as a site with ``CONTROLLER_PORTS`` opens it: the master lets the engine hosts reach
its SSH port and that range alone, and drops every other TCP connection, as a site's
firewall does (no answer, no reset). Host 1 is the master, hosts 2 and 3 run two engines
each; ``fab`` runs on the laptop.

- with the range opened, every engine registers, and every port of the master (but sshd's)
  lies in the range; ``cluster.check`` finds every port reached;
- with the controller's registration port dropped from host 3 alone, ``cluster.check``
  names host 3 and that address:port, and not host 2;
- with a range of 19 ports, one too few, ``cluster.check`` says so, and ``cluster.up``
  too, before anything starts on any host; and with the range of the cluster that runs,
  whose controller holds 19 of its ports, ``cluster.check`` names them.
"""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

from tests import testnet
from tests.conftest import write_inventory
from tests.sshhosts import FakeHosts, why_not_available
from tests.test_e2e_network import fab_on, listeners

ENGINES = {"host2": 2, "host3": 2}
LOW, HIGH = 20100, 20119  # 20 ports: the controller's 19 and Jupyter's

#: The master's firewall: from the network, SSH and CONTROLLER_PORTS alone; every other TCP
#: connection dropped (its sender waits for an answer that never comes).
FIREWALL = """\
table inet ippports {{
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "lo" accept
    ct state established,related accept
    tcp dport 22 accept
    tcp dport {low}-{high} accept
    meta l4proto tcp drop
  }}
}}
"""

#: One more table: TCP from one host to one port dropped.
BLOCK = """\
table inet ippblock {{
  chain input {{
    type filter hook input priority 0; policy accept;
    ip saddr {source} tcp dport {port} drop
  }}
}}
"""


@pytest.fixture(scope="module")
def network():
    """The laptop and three fake hosts, the master behind the firewall of `FIREWALL`."""
    reason = why_not_available() or testnet.why_not_available()
    if reason:
        pytest.skip(reason)
    with testnet.TestNetwork(3, f"ipq{os.getpid()}") as net, FakeHosts(3, network=net) as hosts, \
            tempfile.TemporaryDirectory(prefix="laptop-home-") as home:
        net.hosts, net.laptop_home = hosts, home
        net.nft("host1", FIREWALL.format(low=LOW, high=HIGH))
        yield net


def inventory(net, folder, name, ports):
    engines = "".join(f"{net.address(host)} engines={count}\n" for host, count in ENGINES.items())
    return write_inventory(folder, f"[master]\n{net.address('host1')}\n[engines]\n{engines}",
                           CLUSTER_ENV=sys.prefix, CLUSTER_NAME=name, IPP_PROFILE=name,
                           CONTROLLER_PORTS=ports, KNOWN_HOSTS=net.hosts.known_hosts)


@pytest.fixture(scope="module")
def cluster(network, tmp_path_factory):
    """A cluster up behind the firewall, from the laptop: ``(inventory, cluster.up's result)``;
    down after the module."""
    inv = inventory(network, tmp_path_factory.mktemp("inv"), "ports", f"{LOW}-{HIGH}")
    try:
        yield inv, fab_on(network, "laptop", inv, "cluster.up")
    finally:
        down = fab_on(network, "laptop", inv, "cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr


def test_behind_a_firewall_that_opens_controller_ports_alone_every_engine_registers(network, cluster):
    _, up = cluster
    assert up.returncode == 0, up.stdout + up.stderr
    for host, count in ENGINES.items():
        assert re.search(rf"│ {network.address(host)} +│ {count} +│ {count} +│ [0-9]+ +│ ok", up.stdout)
    found = listeners(network)
    ports = {int(local.rsplit(":", 1)[1]) for local in found}
    assert len(ports) == 20 and ports <= set(range(LOW, HIGH + 1)), found
    assert found[f"127.0.0.1:{LOW}"].startswith("jupyter")  # Jupyter: the range's first port
    check = fab_on(network, "laptop", cluster[0], "cluster.check")
    assert check.returncode == 0 and "ready: 3 hosts" in check.stdout, check.stdout + check.stderr


def test_check_names_the_host_that_cannot_reach_the_controllers_port(network, cluster):
    inv, up = cluster
    assert up.returncode == 0, up.stdout + up.stderr
    engine_file = Path.home() / ".ipython" / "profile_ports" / "security" / "ipcontroller-engine.json"
    port = json.loads(engine_file.read_text())["registration"]
    master, blocked, fine = (network.address(host) for host in ("host1", "host3", "host2"))
    network.nft("host1", BLOCK.format(source=blocked, port=port))
    try:
        check = fab_on(network, "laptop", inv, "cluster.check")
    finally:
        network.nft("host1", "delete table inet ippblock\n")
    said = check.stdout + check.stderr
    assert check.returncode == 1, said
    assert f"error: {blocked}: cannot reach the controller at {master}:{port} (no answer in 3 s):" in said
    assert f"error: {fine}:" not in said and check.stderr.count("cannot reach") == 1, said


def test_a_range_too_small_is_said_by_check_and_up_before_anything_starts(network, cluster, tmp_path):
    low, high = LOW + 100, HIGH + 99  # 19 ports: the range of no cluster
    inv = inventory(network, tmp_path / "inv", "small", f"{low}-{high}")
    expected = (f"error: {network.address('host1')}: CONTROLLER_PORTS={low}-{high} holds 19 ports,"
                " but the cluster needs 20: 19 for the controller")
    check = fab_on(network, "laptop", inv, "cluster.check")
    assert check.returncode == 1 and expected in check.stderr, check.stdout + check.stderr
    up = fab_on(network, "laptop", inv, "cluster.up")
    assert up.returncode == 1 and expected in up.stderr, up.stdout + up.stderr
    assert not [s for host in network.hosts.hosts for s in host.screens() if ".small-" in s]
    assert not os.path.exists(Path.home() / ".ipp-cluster" / "small")
    # the range of the cluster that runs: its controller holds 19 of its ports
    inv = inventory(network, tmp_path / "taken", "taken", f"{LOW}-{HIGH}")
    check = fab_on(network, "laptop", inv, "cluster.check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert (f"CONTROLLER_PORTS={LOW}-{HIGH} holds 20 ports, but 19 of them are taken on the master"
            f" ({LOW + 1} by root, {LOW + 2} by root,") in check.stderr, check.stderr
