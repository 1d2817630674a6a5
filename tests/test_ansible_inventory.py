"""
The inventory readers against their referee, ansible-core: for a corpus of INI and YAML
inventories, ``fab cluster.hosts --json`` agrees with ``ansible-inventory -i FILE --list``
on every host's roles (from its groups), address, port, user and engines; the same
inventory converted by ``ansible-inventory --list`` to ``hosts.json`` reads the same
again. Then each bad YAML input, with its exact ``file:line:`` message. No SSH.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.inventory.folder import InventoryError, load_inventory
from tests.conftest import fab

RANGES_INI = """\
[master]
head ansible_host=10.0.0.1 ansible_user=admin

[cpu]
n[:2]
node[08:10] engines=16
r[y:B]
s[0:20:10]   ansible_port=2200  # a range with a stride

[gpu]
g[1:2] ansible_port=2222 gpus=auto

[engines:children]
cpu
gpu

[all:vars]
ansible_user=lab
engines=2

[cpu:vars]
engines="8"   # quoted, with a comment: Ansible reads 8
setup='module load python/3.11'
"""

DEEP_INI = """\
[master]
m1

[rack1]
a1 engines=1
a2

[rack2]
b1 ansible_host=192.168.0.2

[alpha]
a2
b1

[beta]
a2
b1

[room:children]
rack1
rack2

[engines:children]
room
alpha
beta

[all:vars]
engines=9
ansible_port=2022

[room:vars]
engines=7

[rack1:vars]
engines=5
ansible_user=r1

[alpha:vars]
ansible_group_priority=10
engines=3

[beta:vars]
engines=4
ansible_user=beta
"""

LAB_YAML = """\
all:
  vars:
    ansible_user: lab
    engines: 2
  children:
    master:
      hosts:
        head:
          ansible_host: 10.0.0.1
    engines:
      children:
        cpu:
          hosts:
            node[01:04]:
            fat[a:c]:
              engines: 64
          vars:
            engines: 16
            threads: 1
        gpu:
          hosts:
            gpu[1:2]:
              ansible_port: 2222
          vars:
            gpus: auto
            setup: module load cuda/12 python/3.11
    old:
      hosts:
        legacy[1:3]:
      children:
        gpu:
"""

PRIORITY_YAML = """\
all:
  children:
    master:
      hosts:
        m1:
    engines:
      children:
        zeta:
          vars: {engines: 3, ansible_group_priority: 5}
          hosts: {h1: , h2: {engines: 1}}
        eta:
          vars: {engines: 4, ansible_user: eta}
          hosts: {h1: , h3: }
        deep:
          children:
            deeper:
              hosts: {h3: {ansible_port: 2201}}
              vars: {engines: 6}
"""

CORPUS = {"ranges.ini": ("hosts", RANGES_INI), "deep.ini": ("hosts", DEEP_INI),
          "lab.yml": ("hosts.yml", LAB_YAML), "priority.yml": ("hosts.yml", PRIORITY_YAML)}


def ansible_inventory():
    """
    The command of the referee, ansible-core's ``ansible-inventory``: this Python's own
    (its module: found wherever pip put the scripts), else the one on PATH. Neither: the
    test fails with the cure, never skips, since requirements-test.txt installs it.
    """
    if importlib.util.find_spec("ansible") is not None:
        return [sys.executable, "-m", "ansible.cli.inventory"]
    found = shutil.which("ansible-inventory")
    if found is None:
        pytest.fail(f"ansible-core is not importable by {sys.executable} and no ansible-inventory "
                    "is on PATH: pip install -r requirements-test.txt", pytrace=False)
    return [found]


def ansible_list(path, tmp_path):
    """What ``ansible-inventory -i PATH --list`` says, as JSON."""
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible"), ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_NOCOLOR="1")
    out = subprocess.run([*ansible_inventory(), "-i", str(path), "--list"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_without_ansible_core_the_referee_fails_saying_why_and_never_skips(tmp_path, monkeypatch):
    (tmp_path / "hosts").write_text("[master]\nm\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])  # this Python cannot import ansible
    monkeypatch.delitem(sys.modules, "ansible", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BaseException) as outcome:  # pytest's Skipped is no Exception
        ansible_list(tmp_path / "hosts", tmp_path)
    assert (outcome.type, str(outcome.value)) == (pytest.fail.Exception, (
        f"ansible-core is not importable by {sys.executable} and no ansible-inventory is on PATH: "
        "pip install -r requirements-test.txt"))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # then the one on PATH
    assert ansible_list(tmp_path / "hosts", tmp_path)["master"]["hosts"] == ["m"]


def ansible_hosts(listing):
    """Each host with roles, as ours: ``{name: (roles, address, port, user, engines)}``."""
    def members(group):
        entry = listing.get(group, {})
        found = set(entry.get("hosts", []))
        for child in entry.get("children", []):
            found |= members(child)
        return found
    roles = {name: [] for name in listing["_meta"]["hostvars"]}
    for role in ("master", "engines"):
        for name in members(role):
            roles.setdefault(name, []).append(role)
    facts = {}
    for name, own in roles.items():
        if own:
            variables = listing["_meta"]["hostvars"].get(name, {})
            engines = variables.get("engines")
            facts[name] = (own, variables.get("ansible_host", name), variables.get("ansible_port"),
                           variables.get("ansible_user"), None if engines is None else int(engines))
    return facts


def our_hosts(folder):
    """``fab cluster.hosts --json`` of the inventory in *folder*."""
    out = fab("cluster.hosts", "--json", inventory=folder, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def by_name(listing):
    return {host["name"]: host for host in listing["hosts"]}


def essentials(listing):
    return {h["name"]: (h["roles"], h["address"], h["port"], h["user"], h["engines"])
            for h in listing["hosts"]}


@pytest.mark.parametrize("corpus", CORPUS)
def test_fab_reads_each_inventory_as_ansible_does_and_its_json_listing_too(corpus, tmp_path):
    file_name, text = CORPUS[corpus]
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / file_name).write_text(text)
    theirs = ansible_list(folder / file_name, tmp_path)
    ours = our_hosts(folder)
    assert essentials(ours) == ansible_hosts(theirs)
    converted = tmp_path / "converted"
    converted.mkdir()
    (converted / "hosts.json").write_text(json.dumps(theirs))
    again = our_hosts(converted)
    assert again["master"] == ours["master"]
    assert by_name(again) == by_name(ours)  # every setting, threads, gpus and setup too


def test_the_corpus_holds_what_it_claims(tmp_path):
    """The cases above, read by us: a test whose corpus lost its point would pass for nothing."""
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "hosts").write_text(RANGES_INI)
    hosts = {h["name"]: h for h in load_inventory(folder).listing()["hosts"]}
    assert sorted(hosts) == sorted(["head", "n0", "n1", "n2", "node08", "node09", "node10", "ry", "rz",
                                    "rA", "rB", "s0", "s10", "s20", "g1", "g2"])
    assert (hosts["n0"]["engines"], hosts["node08"]["engines"], hosts["g1"]["engines"]) == (8, 16, 2)
    assert (hosts["head"]["user"], hosts["n0"]["user"], hosts["s10"]["port"]) == ("admin", "lab", 2200)
    (folder / "hosts").write_text(DEEP_INI)
    hosts = {h["name"]: h for h in load_inventory(folder).listing()["hosts"]}
    # a1: its own; a2: rack1 (depth 3) over alpha/beta (depth 2); b1: alpha's priority over beta
    assert {n: hosts[n]["engines"] for n in ("a1", "a2", "b1")} == {"a1": 1, "a2": 5, "b1": 3}
    assert (hosts["a2"]["user"], hosts["b1"]["user"], hosts["b1"]["port"]) == ("r1", "beta", 2022)


BAD_YAML = [
    ("all:\n  children:\n    master:\n      hosts:\n        m[5:1]:\n", 5,
     "bad range [5:1] in 'm[5:1]': its start is after its end"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n      host: {m2: }\n", 5,
     "unknown key 'host' in group 'master' (known: hosts, vars, children)"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n    engines:\n      vars:\n        engines: many\n", 7,
     "engines='many' must be a whole number of at least 1"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n    engines:\n      hosts:\n"
     "        n1: {engine: 4}\n", 7,
     "unknown variable 'engine' in the variables of host 'n1' (known: engines=N, threads=N, "
     "gpus=auto|0,1, setup=SNIPPET, ansible_host, ansible_port, ansible_user, "
     "ansible_ssh_private_key_file)"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n    engines:\n      children:\n"
     "        racks:\n          children:\n            engines:\n", 9,
     "group 'engines' is its own child: engines -> racks -> engines"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n    engines: &e\n      children:\n"
     "        racks: *e\n", 7, "group 'racks' is its own child: engines -> racks, an alias of engines"),
    ("all:\n  children:\n    master: {hosts: {m1: }}\n    engines: &e {children: {racks: *e}}\n", 4,
     "group 'racks' is its own child: engines -> racks, an alias of engines"),
    ("all:\n  children:\n    master: {hosts: {m1: }}\n    engines: &e {children: {engines: *e}}\n", 4,
     "group 'engines' is its own child: engines -> engines"),
    ("all:\n  children:\n    master:\n      hosts: [m1]\n", 4,
     "the hosts of group 'master' must be a mapping, not a list"),
    ("all:\n  children:\n    master:\n      hosts: {m1: }\n    engines:\n      hosts:\n"
     "        n1: {ansible_port: [22]}\n", 7,
     "ansible_port=[22] must be a port number from 1 to 65535"),
    ("all:\n  children:\n    master: {hosts: {m1: }\n", 4, "not valid YAML: expected ',' or '}', but got '<stream end>'"),
    ("all:\n  children:\n    master:\n      hosts:\n        m1:\n          ansible_user: !vault |\n"
     "            $ANSIBLE_VAULT;1.1;AES256\n            6162\n", 6,
     "cannot read !vault: could not determine a constructor for the tag '!vault'"),
    ("all:\n  children:\n    engines:\n      hosts: {n1: }\n", 0,
     "no group 'master' with a host (all: children: master: hosts:)"),
]


@pytest.mark.parametrize("text, line, reason", BAD_YAML)
def test_each_bad_yaml_inventory_names_file_line_and_problem(tmp_path, text, line, reason):
    (tmp_path / "hosts.yml").write_text(text)
    with pytest.raises(InventoryError) as error:
        load_inventory(tmp_path)
    assert (error.value.path, error.value.line, error.value.reason) == (str(tmp_path / "hosts.yml"), line,
                                                                        reason)


def test_one_hosts_file_or_an_error_naming_those_found(tmp_path):
    (tmp_path / "hosts").write_text("[master]\nm\n")
    (tmp_path / "hosts.yml").write_text("all: {children: {master: {hosts: {m: }}}}\n")
    with pytest.raises(InventoryError) as error:
        load_inventory(tmp_path)
    assert str(error.value) == f"{tmp_path}: hosts and hosts.yml are all hosts files: keep one"
    (tmp_path / "hosts").unlink()
    assert load_inventory(tmp_path).master.name == "m"


def test_a_group_repeated_by_a_yaml_alias_beside_itself_is_no_cycle(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    master: {hosts: {m1: }}\n    engines:\n"
                                        "      children: {cpu: &c {hosts: {n1: {engines: 2}}}, spare: *c}\n")
    assert [(h.name, h.engines) for h in load_inventory(tmp_path).engines] == [("n1", 2)]
