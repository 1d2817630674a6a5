"""
End to end: a lab's YAML inventory (ranges, children, group variables, a host reached
through ansible_host/ansible_port) brings a cluster up on the fake hosts as it is, and
so does what ``ansible-inventory --list`` makes of it, as ``hosts.json``.
"""

import json
import sys

from tests.conftest import engines_per_host, fab, leftovers, write_inventory
from tests.test_ansible_inventory import ansible_list

NAME = PROFILE = "yamlinv"
HOSTS_YML = """\
all:
  children:
    master:
      hosts:
        127.0.2.1:
    engines:
      children:
        rack:
          hosts:
            127.0.2.[2:3]:
          vars:
            engines: 2
        far:
          hosts:
            node04: {ansible_host: 127.0.2.4, ansible_port: 2222, engines: 1}
"""


def test_a_yaml_inventory_and_its_ansible_listing_bring_the_cluster_up(fake_hosts, tmp_path):
    inventory = write_inventory(tmp_path / "inv", "", CLUSTER_ENV=sys.prefix, CLUSTER_NAME=NAME,
                                IPP_PROFILE=PROFILE, JUPYTER_PORT=18954,
                                KNOWN_HOSTS=fake_hosts.known_hosts)
    (inventory / "hosts").unlink()
    (inventory / "hosts.yml").write_text(HOSTS_YML)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 1}
        listing = ansible_list(inventory / "hosts.yml", tmp_path)
        (inventory / "hosts.yml").unlink()
        (inventory / "hosts.json").write_text(json.dumps(listing))
        status = run("cluster.status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("2/2") == 2 and status.stdout.count("1/1") == 1
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3, 4)) == {}
