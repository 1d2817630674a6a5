"""
``CONTROLLER_INTERFACE``: the controller's address on a master of several addresses, by the
name of its interface (``ib0``) or by a network (``10.0.0.0/8``). The setting read and checked
(file and line), the address it asks of the master, the master's own pick (``interface_address``
of ``steps/lib.sh``, from what ``ip -o -4 addr show`` says: a stand-in here) and the line
``cluster.check`` says when no address of the master matches, with those it has.
"""

import subprocess

import pytest

from tasks.inventory.error import InventoryError
from tasks.inventory.folder import Inventory, parse_hosts
from tasks.inventory.settings import parse_settings
from tasks.ssh.fleet import HostResult
from tasks.steps import address, preflight
from tasks import commands
from tests.test_commands import REMOTE, calls, facts, host  # noqa: F401 (host: a fixture)

#: What ``ip -o -4 addr show`` prints on a login node of three networks (a veth's name
#: with its peer, ``@if5``, as in a container).
IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0@if5    inet 192.168.7.10/24 brd 192.168.7.255 scope global eth0\\       valid_lft forever
2: eth0@if5    inet 10.231.1.1/24 scope global eth0\\       valid_lft forever preferred_lft forever
3: ib0    inet 10.40.0.1/16 brd 10.40.255.255 scope global ib0\\       valid_lft forever
"""


def test_the_setting_is_an_interface_or_a_network_and_not_with_controller_address():
    assert parse_settings("CONTROLLER_INTERFACE=ib0\n").controller_interface == "ib0"
    assert parse_settings("CONTROLLER_INTERFACE=eth0.100\n").controller_interface == "eth0.100"
    assert parse_settings("CONTROLLER_INTERFACE=10.1.2.3/8\n").controller_interface == "10.0.0.0/8"
    assert parse_settings("").controller_interface == ""


INTERFACE = ("must be a network interface's name (ib0) or an IPv4 network (10.0.0.0/8),"
             " or empty")


@pytest.mark.parametrize("text, line, reason", [
    ("CONTROLLER_INTERFACE=eth 0\n", 1, f"CONTROLLER_INTERFACE='eth 0' {INTERFACE}"),
    ("CONTROLLER_INTERFACE=10.0.0.0/33\n", 1, f"CONTROLLER_INTERFACE='10.0.0.0/33' {INTERFACE}"),
    ("CONTROLLER_INTERFACE=averyveryverylongname\n", 1,
     f"CONTROLLER_INTERFACE='averyveryverylongname' {INTERFACE}"),
    ("\nCONTROLLER_INTERFACE=10.0.0.1\n", 2, f"CONTROLLER_INTERFACE='10.0.0.1' {INTERFACE}"
     " (one address: that is CONTROLLER_ADDRESS)"),
    ("CONTROLLER_ADDRESS=10.0.0.1\nCONTROLLER_INTERFACE=ib0\n", 2,
     "CONTROLLER_INTERFACE=ib0 and CONTROLLER_ADDRESS=10.0.0.1: set one of them, not both"),
])
def test_a_bad_interface_names_file_line_and_problem(text, line, reason):
    with pytest.raises(InventoryError) as error:
        parse_settings(text, "inv/cluster.env")
    assert (error.value.line, error.value.reason) == (line, reason)


def inventory(text="", master="localhost"):
    found_master, engines = parse_hosts(f"[master]\n{master}\n[engines]\nnode01\nnode02\n")
    return Inventory(found_master, engines, parse_settings(text), "inv")


def test_the_master_is_asked_for_the_address_of_its_interface_and_no_peer_is_asked():
    chosen = inventory("CONTROLLER_INTERFACE=10.0.0.0/8\n")
    assert address.controller_address(chosen, {"node01": "1.2.3.4", "node02": "5.6.7.8"}) == \
        "interface=10.0.0.0/8"
    assert not address.needs_peer_addresses(chosen)
    assert address.needs_peer_addresses(inventory())


def interface_address(spec, listing=IP_ADDR):
    """``interface_address SPEC`` of ``steps/lib.sh``, with a stand-in ``ip`` printing *listing*."""
    lib = (REMOTE / "steps" / "lib.sh").read_text()
    ip = f"ip() {{ [ \"$*\" = '-o -4 addr show' ] && printf '%s' '{listing}'; }}\n"
    out = subprocess.run(["sh", "-c", lib + ip + 'interface_address "$1"; echo "|$(ipv4_addresses)"',
                          "sh", spec], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("spec, found", [
    ("ib0", "10.40.0.1"), ("eth0", "192.168.7.10"), ("10.231.1.0/24", "10.231.1.1"),
    ("10.0.0.0/8", "10.231.1.1"), ("10.40.0.0/16", "10.40.0.1"), ("192.168.7.10/32", "192.168.7.10"),
    ("eth1", ""), ("172.16.0.0/12", ""), ("lo", "127.0.0.1"),
])
def test_the_master_picks_its_first_address_on_the_interface_or_in_the_network(spec, found):
    assert interface_address(spec) == (
        f"{found}\n|" if found else "|") + ("lo 127.0.0.1/8, eth0 192.168.7.10/24, eth0 10.231.1.1/24,"
                                           " ib0 10.40.0.1/16")


def test_check_names_a_master_without_an_address_that_matches_with_those_it_has():
    chosen = inventory("CONTROLLER_INTERFACE=ib0\n", master="login01")
    known = {"python": "3.11.7", "ipyparallel": "9.2.0", "screen": "yes", "missing": "",
             "interface_address": "", "ipv4_addresses": "lo 127.0.0.1/8, eth0 192.168.7.10/24"}
    results = {host.name: HostResult(host, "ok", facts=dict(known)) for host in chosen.hosts}
    assert preflight.check_problems(chosen, results) == {"login01": [
        "CONTROLLER_INTERFACE=ib0 matches no IPv4 address of the master, which has lo"
        " 127.0.0.1/8, eth0 192.168.7.10/24: name one of its interfaces, or a network of one of"
        " those addresses, in cluster.env"]}
    results["login01"].facts["interface_address"] = "10.40.0.1"
    assert preflight.check_problems(chosen, results) == {}


def test_the_master_starts_its_controller_on_the_address_it_picks_or_says_what_it_has(host):
    started = facts(host(commands.start_master(host.settings, "interface=lo")))
    assert started["controller_address"] == "127.0.0.1"
    [controller] = calls(host.home, "ipcontroller", 1)
    assert controller[1:3] == ["--ip=127.0.0.1", "--location=127.0.0.1"]
    facts(host(commands.stop_master()))
    refused = host(commands.start_master(host.settings, "interface=nosuch0"))
    assert refused.returncode == 1 and refused.stderr.startswith(
        "CONTROLLER_INTERFACE=nosuch0 matches no IPv4 address of this host, which has lo 127.0.0.1/8")
