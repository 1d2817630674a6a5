"""
End to end on a master of two networks (`tests.testnet`): host 1 has a second address,
10.231.1.1, where the laptop reaches its SSH (as users reach a login node) and the engine
hosts 2 and 3 do not (they are on 10.231.0.0/24 alone). ``fab`` runs on the laptop, so the
address its SSH came in on, which the controller would take by default, is the wrong one.

- ``CONTROLLER_INTERFACE=10.231.0.0/24`` puts the controller on 10.231.0.1: every engine
  registers, and nothing of the master listens on 10.231.1.1 but sshd;
- ``CONTROLLER_INTERFACE=ib0``, which the master lacks, is named by ``cluster.check`` with
  the addresses the master has, and by ``cluster.up`` before anything starts.
"""

import os
import re
import sys
import tempfile

import pytest

from tests import testnet
from tests.conftest import write_inventory
from tests.sshhosts import FakeHosts, why_not_available
from tests.test_e2e_network import addresses, fab_on, listeners

ENGINES = {"host2": 2, "host3": 2}
SECOND = "10.231.1.1"  # the master's address on the laptop's other network


@pytest.fixture(scope="module")
def network():
    """The laptop and three hosts; host 1 and the laptop on a second network too, where
    host 1's sshd listens as well."""
    reason = why_not_available() or testnet.why_not_available()
    if reason:
        pytest.skip(reason)
    with testnet.TestNetwork(3, f"ipi{os.getpid()}") as net, \
            tempfile.TemporaryDirectory(prefix="laptop-home-") as home:
        net.add_address("host1", f"{SECOND}/24")
        net.add_address(testnet.LAPTOP, "10.231.1.100/24")
        hosts = FakeHosts(3, network=net)
        master = hosts.hosts[0]
        master.config.write_text(master.config.read_text() + f"ListenAddress {SECOND}\n")
        with hosts:
            net.hosts, net.laptop_home = hosts, home
            yield net


def inventory(net, folder, name, interface):
    engines = "".join(f"{net.address(host)} engines={count}\n" for host, count in ENGINES.items())
    return write_inventory(folder, f"[master]\n{SECOND}\n[engines]\n{engines}",
                           CLUSTER_ENV=sys.prefix, CLUSTER_NAME=name, IPP_PROFILE=name,
                           JUPYTER_PORT=18871, CONTROLLER_INTERFACE=interface,
                           KNOWN_HOSTS=net.hosts.known_hosts)


def test_the_controller_listens_on_the_network_named_and_every_engine_registers(network, tmp_path):
    assert network.connect("host2", SECOND, 22) != "open"  # the SSH address: not the engines'
    inv = inventory(network, tmp_path / "inv", "iface", "10.231.0.0/24")
    try:
        up = fab_on(network, "laptop", inv, "cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        for host, count in ENGINES.items():
            assert re.search(rf"│ {network.address(host)} +│ {count} +│ {count} +│ [0-9]+ +│ ok", up.stdout)
        assert addresses(listeners(network)) == {network.address("host1"), "127.0.0.1"}
    finally:
        down = fab_on(network, "laptop", inv, "cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr


def test_an_interface_the_master_lacks_is_named_with_its_addresses_before_anything_starts(network, tmp_path):
    inv = inventory(network, tmp_path / "inv", "noiface", "ib0")
    expected = (f"error: {SECOND}: CONTROLLER_INTERFACE=ib0 matches no IPv4 address of the master,"
                f" which has lo 127.0.0.1/8, eth0 {network.address('host1')}/24, eth0 {SECOND}/24:"
                " name one of its interfaces, or a network of one of those addresses, in cluster.env")
    check = fab_on(network, "laptop", inv, "cluster.check")
    assert check.returncode == 1 and expected in check.stderr, check.stdout + check.stderr
    up = fab_on(network, "laptop", inv, "cluster.up")
    assert up.returncode == 1 and expected in up.stderr, up.stdout + up.stderr
    assert not [s for host in network.hosts.hosts for s in host.screens() if ".noiface-" in s]
