"""Unit tests of where the controller listens (`tasks.steps.address`): pure, no host."""

import pytest

from tasks.inventory.folder import Inventory, Settings, parse_hosts
from tasks.steps.address import (
    FROM_SSH,
    LOOPBACK,
    AddressError,
    controller_address,
    needs_peer_addresses,
)


def inventory(hosts, **settings):
    master, engines = parse_hosts(hosts)
    return Inventory(master, engines, Settings(**settings), "inv")


LOCAL_MASTER = "[master]\nlocalhost\n[engines]\nlocalhost\nnode02\nnode03\n"


def test_engines_only_on_the_master_use_its_loopback():
    assert controller_address(inventory("[master]\nlocalhost\n[engines]\nlocalhost\n")) == LOOPBACK
    assert controller_address(inventory("[master]\nnode01\n[engines]\nnode01\n")) == LOOPBACK
    assert controller_address(inventory("[master]\nnode01\n")) == LOOPBACK


def test_a_remote_master_listens_where_fabs_ssh_came_in():
    assert controller_address(inventory("[master]\nnode01\n[engines]\nnode02\n")) == FROM_SSH


def test_a_setting_wins():
    setting = inventory(LOCAL_MASTER, controller_address="10.1.0.1")
    assert not needs_peer_addresses(setting)
    assert controller_address(setting) == "10.1.0.1"


def test_fab_on_the_master_uses_where_the_engine_hosts_see_it_come_from():
    local = inventory(LOCAL_MASTER)
    assert needs_peer_addresses(local)
    assert controller_address(local, {"node02": "10.1.0.1", "node03": "10.1.0.1"}) == "10.1.0.1"
    assert controller_address(local, {"node02": "10.1.0.1", "node03": None}) == "10.1.0.1"


def test_fab_on_the_master_refuses_when_the_engine_hosts_disagree_or_none_answered():
    local = inventory(LOCAL_MASTER)
    with pytest.raises(AddressError) as error:
        controller_address(local, {"node02": "10.1.0.1", "node03": "192.168.5.1"})
    assert str(error.value) == (
        "the engine hosts reach this machine at different addresses (node02 sees 10.1.0.1, "
        "node03 sees 192.168.5.1): set CONTROLLER_ADDRESS in cluster.env to the one they all reach")
    with pytest.raises(AddressError) as error:
        controller_address(local, {})
    assert str(error.value).startswith("no engine host answered")


def test_fab_on_the_login_node_of_a_controller_in_a_job_uses_where_ssh_reaches_the_node():
    from tasks.inventory.folder import parse_inventory
    master, engines, allocated = parse_inventory(
        "[master]\nlocalhost\n[engines:children]\nnodes\n[nodes]\n[nodes:vars]\nslurm_nodes=2\nslurm_master=yes\n")
    in_job = Inventory(master, engines, Settings(), "inv", allocations=allocated)
    assert not needs_peer_addresses(in_job)
    assert controller_address(in_job) == FROM_SSH  # on the node, where the login node's SSH came in
