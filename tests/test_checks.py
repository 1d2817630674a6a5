"""Unit tests for the preflight check's judgement and for choosing hosts."""

import pytest

from tasks.inventory.folder import Inventory, Settings, parse_hosts
from tasks.steps.preflight import judge as problems

MASTER = {"python": "3.11.7", "ipyparallel": "9.2.0", "screen": "yes", "missing": "",
          "screen_version": "Screen version 4.09.00 (GNU) 30-Jan-22"}
ENV = Settings(cluster_env="/opt/env")


def test_a_host_like_the_master_has_no_problem():
    assert problems(dict(MASTER, python="3.11.2"), MASTER, ENV) == []
    assert problems(dict(MASTER, screen_version="Screen version 5.0.0 (build on 2024-09-01)",
                         env_exists="no", python3="3.12.3"), MASTER, ENV) == [
        "CLUSTER_ENV /opt/env does not exist: correct CLUSTER_ENV in cluster.env if it is "
        "misspelled, else create it there with fab cluster.install"]


@pytest.mark.parametrize("facts, expected", [
    ({"screen": "no"}, ["screen is not installed: install it (apt-get install screen)"]),
    ({"python": "3.12.1"}, ["Python 3.12.1 here but 3.11.7 on the master: "
                            "use the same Python minor version on every host"]),
    ({"ipyparallel": "8.8.0"}, ["ipyparallel 8.8.0 here but 9.2.0 on the master: "
                                "install the same version everywhere (fab cluster.install)"]),
    ({"ipyparallel": ""}, ["ipyparallel is not installed in /opt/env: run fab cluster.install"]),
    ({"missing": " ipengine jupyter"}, ["ipengine, jupyter missing from /opt/env: run fab cluster.install"]),
    ({"port_user": "alice"}, ["JUPYTER_PORT 8888 is taken here by alice: choose another JUPYTER_PORT in "
                              "cluster.env"]),
    ({"env_exists": "no", "env_siblings": "/opt/anaconda /opt/enw", "python": ""},
     ["CLUSTER_ENV /opt/env does not exist, but /opt/enw does: correct CLUSTER_ENV in cluster.env"]),
    ({"env_exists": "no", "env_siblings": "/opt/anaconda", "python": ""},
     ["CLUSTER_ENV /opt/env does not exist: correct CLUSTER_ENV in cluster.env if it is "
      "misspelled, else create it there with fab cluster.install"]),
    ({"python": "3.10.12"}, ["Python 3.10.12 in /opt/env here, but the cluster's packages need Python 3.11"
                             " or newer: make CLUSTER_ENV with a newer one (fab cluster.install"
                             " --python=python3.11)"]),
    ({"env_exists": "no", "env_siblings": "", "python": "", "python3": "3.10.12"},
     ["CLUSTER_ENV /opt/env does not exist: correct CLUSTER_ENV in cluster.env if it is "
      "misspelled, else create it there with fab cluster.install",
      "python3 is Python 3.10.12 here, but the cluster's packages need Python 3.11 or newer:"
      " install one and name it to fab cluster.install --python=python3.11"]),
    ({"screen_version": "Screen version 4.05.00 (GNU) 10-Dec-16"},
     ["screen 4.05.00 here, but the cluster needs screen 4.6 or newer (its -Logfile): upgrade it"]),
    ({"python": "", "ipyparallel": "", "missing": " ipcontroller ipengine jupyter"},
     ["no Python in /opt/env: run fab cluster.install",
      "ipcontroller, ipengine, jupyter missing from /opt/env: run fab cluster.install"]),
])
def test_each_problem_says_what_to_do(facts, expected):
    assert problems(dict(MASTER, **facts), MASTER, ENV) == expected


def test_a_misspelled_cluster_env_under_the_home_is_named_with_its_sibling_as_written():
    """CLUSTER_ENV=~/ipp-enw: each host expands the ~ and lists the folders beside it
    (env_siblings, with its home); the one meant is named as cluster.env spells it."""
    facts = dict(MASTER, env_exists="no", env_siblings="/home/lab/anaconda /home/lab/ipp-env", python="")
    assert problems(facts, MASTER, Settings(cluster_env="~/ipp-enw")) == [
        "CLUSTER_ENV ~/ipp-enw does not exist, but ~/ipp-env does: correct CLUSTER_ENV in cluster.env"]


def test_select_by_role_and_name():
    master, engines = parse_hosts("[master]\nm\n[engines]\nm\na\nb\n")
    inventory = Inventory(master, engines, Settings(), "inv")
    assert [h.name for h in inventory.select()] == ["m", "a", "b"]
    assert [h.name for h in inventory.select("engines")] == ["m", "a", "b"]
    assert [h.name for h in inventory.select("master")] == ["m"]
    assert [h.name for h in inventory.select("engines", ["b", "m"])] == ["m", "b"]
    with pytest.raises(ValueError, match="not in the inventory: z"):
        inventory.select(names=["z"])
    with pytest.raises(ValueError, match="unknown role 'workers'"):
        inventory.select("workers")


def test_a_master_whose_hard_limit_of_open_files_is_too_low_for_the_engines_is_named():
    from tasks.steps.preflight import open_files_problem
    assert open_files_problem({"open_files_hard": "256"}, 120) == (
        "the master allows 256 open files (its hard limit, ulimit -Hn) but the controller of 120"
        " engines needs about 350: raise nofile for your user in /etc/security/limits.conf there,"
        " or start fewer engines")
    assert open_files_problem({"open_files_hard": "1024"}, 120) == ""
    assert open_files_problem({"open_files_hard": "unlimited"}, 10000) == ""


def gpu_cluster_facts(open_files_hard):
    """An inventory of a master and 10 engine hosts of ``gpus=auto``, and each host's facts as
    facts.sh reports them: 64 cores, 4 GPUs, so 4 engines (not 64) each, 40 in all; the
    master's hard limit of open files is *open_files_hard*."""
    from tasks.ssh.fleet import HostResult
    text = "[master]\nm\n[engines]\n" + "".join(f"n{i:02d} gpus=auto\n" for i in range(10))
    master, engines = parse_hosts(text)
    inventory = Inventory(master, engines, Settings(), "inv")
    node = dict(MASTER, cores="64", gpus="4 x NVIDIA H200", engines="4")
    results = {h.name: HostResult(h, "ok", facts=dict(node)) for h in engines}
    results["m"] = HostResult(master, "ok", facts=dict(MASTER, open_files_hard=open_files_hard,
                                                        engines="1"))
    return inventory, results


def test_engines_one_per_gpu_are_counted_as_such_for_the_masters_open_files():
    from tasks.steps.preflight import check_problems
    # 40 engines need about 150 open files; 640 (a core each) would need about 1650
    assert not [problem for problem in check_problems(*gpu_cluster_facts("1024")).get("m", [])
                if "open files" in problem]


def test_a_master_too_small_for_the_engines_one_per_gpu_is_named_with_their_count():
    """The twin of the test above, with the problem there: a hard limit below what the 40
    engines need is named, with 40 (not 640, a core each)."""
    from tasks.steps.preflight import check_problems
    assert check_problems(*gpu_cluster_facts("149")) == {"m": [
        "the master allows 149 open files (its hard limit, ulimit -Hn) but the controller of 40"
        " engines needs about 150: raise nofile for your user in /etc/security/limits.conf there,"
        " or start fewer engines"]}
