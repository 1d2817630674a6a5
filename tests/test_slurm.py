"""
Slurm allocations without a Slurm: the inventory's allocation groups in INI, YAML and JSON (the
JSON from ansible-inventory itself), the rendered job script, and the reading of what sbatch,
squeue and scontrol say. The real Slurm is in tests/test_e2e_slurm.py.
"""

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace

import pytest

from tasks.inventory.allocations import Allocation, seconds
from tasks.inventory.folder import InventoryError, load_inventory, parse_inventory
from tasks.inventory.settings import Settings, parse_settings
from tasks.commands import slurm
from tests.test_ansible_inventory import ansible_inventory

CAMPUS_INI = """\
[master]
login01.campus.edu

[engines:children]
cpu_alloc
gpu_alloc

[engines:vars]
slurm_account=lab42

[cpu_alloc]

[cpu_alloc:vars]
slurm_nodes=4
slurm_partition=cpu
slurm_time=04:00:00
slurm_options='--qos=normal --constraint=avx2'

[gpu_alloc]

[gpu_alloc:vars]
slurm_nodes=2
slurm_partition=gpu
slurm_time=90
slurm_options='--gres=gpu:2 --exclusive'
gpus=auto
setup='module load cuda/12.2'
"""

CAMPUS_YAML = """\
all:
  children:
    master:
      hosts:
        login01.campus.edu:
    engines:
      vars: {slurm_account: lab42}
      children:
        cpu_alloc:
          vars:
            slurm_nodes: 4
            slurm_partition: cpu
            slurm_time: "04:00:00"
            slurm_options: --qos=normal --constraint=avx2
        gpu_alloc:
          vars: {slurm_nodes: 2, slurm_partition: gpu, slurm_time: 90, gpus: auto,
                 slurm_options: --gres=gpu:2 --exclusive, setup: module load cuda/12.2}
"""


def allocations(folder):
    return {a.name: a for a in load_inventory(folder).allocations}


def test_the_three_formats_say_the_same_allocations_and_a_lossy_json_listing_is_refused(tmp_path):
    for name, text in (("hosts", CAMPUS_INI), ("hosts.yml", CAMPUS_YAML)):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text(text)
        found = allocations(folder)
        cpu, gpu = found["cpu_alloc"], found["gpu_alloc"]
        assert (cpu.nodes, cpu.partition, cpu.time, cpu.account, cpu.options) == (
            4, "cpu", "04:00:00", "lab42", ("--qos=normal", "--constraint=avx2"))
        assert (gpu.nodes, gpu.time, gpu.gpus, gpu.setup, gpu.options) == (
            2, "90", "auto", "module load cuda/12.2", ("--gres=gpu:2", "--exclusive"))
        assert load_inventory(folder).engines == ()  # no SSH engine host: Slurm chooses the nodes
        for export in (True, False):
            listing = subprocess.run([*ansible_inventory(), "-i", str(folder / name), "--list",
                                      *(["--export"] if export else [])],
                                     capture_output=True, text=True, check=True, timeout=120,
                                     env=dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible")))
            converted = tmp_path / f"{folder.name}-json-{export}"
            converted.mkdir()
            (converted / "hosts.json").write_text(listing.stdout)
            if export:
                assert allocations(converted) == found
            else:
                with pytest.raises(InventoryError, match=r"hosts.json:\d+: group 'cpu_alloc', a child of "
                                   "'engines', has no entry of its own: .* --list --export"):
                    load_inventory(converted)


@pytest.mark.parametrize("text, line, reason", [
    ("[master]\nm\n[engines]\nn slurm_nodes=2\n", 4,
     "slurm_nodes= belongs to a group without hosts (a Slurm allocation), not to a host"),
    ("[master]\nm\n[engines:children]\na\n[a]\nn1\n[a:vars]\nslurm_nodes=2\n", 7, "[a] has hosts and slurm_nodes="),
    ("[master]\nm\n[a]\n[a:vars]\nslurm_nodes=2\n", 4, "is not a child of [engines]"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=0\n", 7, "at least 1"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_time=4h\n", 8,
     "must be a Slurm time limit"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_partition='cpu;rm'\n", 8,
     "not a valid Slurm partition name"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_options='--job-name=x'\n", 6,
     "holds '--job-name=x': this project sets --job-name itself"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_options='--qos=\"x'\n", 8,
     "slurm_options=.*No closing quotation"),
    ("all:\n  children:\n    master: {hosts: {m: }}\n    engines: {hosts: {n: {slurm_time: 5}}}\n", 4,
     "slurm_time belongs to a group without hosts"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\ngpus=auto\n", 6,
     "gpus=auto in allocation 'a' takes the GPUs Slurm binds to the job: ask for them in slurm_options"),
    ("all:\n  children:\n    master: {hosts: {m: }}\n    engines: {children: {'a/b': {vars: {slurm_nodes: 1}}}}\n",
     4, "allocation 'a/b': its name must be letters, digits"),
    ("[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_master=maybe\n", 8,
     "slurm_master='maybe' must be yes or no"),
    ("[master]\nm\n[engines:children]\na\nb\n[a]\n[b]\n[a:vars]\nslurm_nodes=2\nslurm_master=yes\n"
     "[b:vars]\nslurm_nodes=1\nslurm_master=yes\n", 11, "[b] has slurm_master=yes, as has a: one runs the controller"),
    ("[master]\nm\n[engines:children]\na\n[engines:vars]\nslurm_master=yes\n[a]\n[a:vars]\nslurm_nodes=2\n", 8,
     "[a] inherits slurm_master=: set it on the one allocation"),
])
def test_a_bad_allocation_is_an_error_naming_file_and_line(text, line, reason):
    with pytest.raises(InventoryError) as error:
        parse_inventory(text, kind="yaml" if text.startswith("all:") else "ini")
    assert str(error.value).startswith(f"hosts:{line}: ")
    assert re.search(reason, str(error.value)) if "No closing" in reason else reason in str(error.value)


def test_a_yaml_time_limit_is_read_as_written_not_as_yaml_1_1_base_60():
    text = ("all:\n  children:\n    master: {hosts: {m: }}\n    engines:\n      children:\n"
            "        a:\n          vars: {slurm_nodes: 1, slurm_time: 4:00:00}\n")
    assert parse_inventory(text, kind="yaml")[2][0].time == "4:00:00"  # not 14400 minutes


def test_slurm_master_puts_the_controller_in_one_allocation_and_needs_a_shared_home(tmp_path):
    (tmp_path / "hosts").write_text(CAMPUS_INI.replace("slurm_partition=cpu\n", "slurm_partition=cpu\nslurm_master=yes\n"))
    inventory = load_inventory(tmp_path)
    assert inventory.master_allocation.name == "cpu_alloc" and not inventory.allocations[1].master
    assert inventory.slurm_host == inventory.master  # the login node, until a job's node is the master
    (tmp_path / "cluster.env").write_text("SHARED_HOME=no\n")
    with pytest.raises(InventoryError, match="cluster.env:1: SHARED_HOME=no, but slurm_master=yes"):
        load_inventory(tmp_path)


def test_slurm_wait_is_checked():
    assert parse_settings("SLURM_WAIT=3600\n").slurm_wait == 3600
    with pytest.raises(InventoryError, match="cluster.env:1: SLURM_WAIT='soon' must be a number"):
        parse_settings("SLURM_WAIT=soon\n")


def node_program(script):
    """The node program a job script carries (the base64 data of its slurm_job call)."""
    data = re.split(r"slurm_job 120 (?:yes|no) \w+ (?:yes|no) <<'IPP-END-OF-DATA'\n", script, maxsplit=1)[1].split(
        "\nIPP-END-OF-DATA", 1)[0]
    return base64.b64decode(data).decode()


def test_the_job_script_carries_the_node_program_with_every_value_quoted(tmp_path):
    settings = Settings(cluster_name="lab", ipp_profile="lab", cluster_env="/opt/env", memory_limit="auto")
    folder = tmp_path / "inv"
    folder.mkdir()
    (folder / "hosts").write_text(CAMPUS_INI.replace("module load cuda/12.2", "touch /tmp/x; $(id)"))
    gpu = allocations(folder)["gpu_alloc"]
    assert slurm.sbatch_options(gpu) == ["--nodes=2", "--partition=gpu", "--time=90", "--account=lab42",
                                         "--gres=gpu:2", "--exclusive"]
    script = slurm.job_script(settings, gpu)
    assert script.startswith("#!/bin/sh\n") and "#SBATCH" not in script  # sbatch reads no option of ours
    node = node_program(script)
    assert "\nslurm_node '' '' auto yes auto yes <<'IPP-END-OF-DATA'\n" in node
    assert "setup lab lab /opt/env/bin/ 60 'touch /tmp/x; $(id)'" in node  # the SETUP, one quoted word
    assert "\nwrite_engine_file <<" not in node  # a shared home: the nodes read the controller's file
    assert "\nslurm_job 120 no gpu_alloc yes <<'IPP-END-OF-DATA'\n" in script and slurm.output(settings) == ""
    alone = replace(settings, shared_home=False)  # the key comes over SSH; the job writes its output
    assert "\nslurm_job 120 no gpu_alloc no <<'IPP-END-OF-DATA'\n" in slurm.job_script(alone, gpu)
    assert "\nwrite_engine_file <<" not in node_program(slurm.job_script(alone, gpu))
    assert slurm.output(alone) == "/dev/null"
    assert "stop_master() {" not in script
    in_charge = slurm.job_script(settings, replace(gpu, master=True))  # slurm_master=yes
    assert "\nslurm_job 120 yes gpu_alloc yes <<'IPP-END-OF-DATA'\n" in in_charge and "\nstop_master() {" in in_charge
    with_engines = slurm.sbatch_options(Allocation(name="a", nodes=3, engines=8))
    assert with_engines == ["--nodes=3", "--ntasks-per-node=8"]
    if shutil.which("shellcheck"):
        for text in (script, node, in_charge):
            (tmp_path / "job.sh").write_text(text)
            checked = subprocess.run(["shellcheck", "-s", "sh", "-e", "SC2016,SC2034,SC2154", str(tmp_path / "job.sh")],
                                     capture_output=True, text=True)
            assert checked.returncode == 0, checked.stdout


def test_what_squeue_and_scontrol_say_is_read():
    running = slurm.parse_job("12|RUNNING|None|3:59:12|node[01-03],gpu7|2026-12-05T10:00:00|ipp-lab-cpu|"
                              "ann|node[01-02]/0-3/;node03/0-1,5/;gpu7/0/gpu:a100:2(IDX:0-1),mps:0;|"
                              "node01/10.1.0.11|1|node01=10.1.0.11,node02=10.1.0.12,node03=,gpu7=gpu7.ib,")
    assert (running.id, running.state, running.reason, running.nodes) == ("12", "RUNNING", "", "node[01-03],gpu7")
    assert running.addresses == {"node01": "10.1.0.11", "node02": "10.1.0.12", "gpu7": "gpu7.ib"}
    assert (running.batch, running.batch_address, running.steps, running.held) == ("node01", "10.1.0.11", 1, False)
    assert slurm.parse_job("12|RUNNING|None|3:59:12|node01|x|x|ann|node01/0/|node01/10.1.0.11|0").held
    assert running.cpus == {"node01": 4, "node02": 4, "node03": 3, "gpu7": 1}
    assert running.seconds_left == 3 * 3600 + 59 * 60 + 12 and running.active and not running.hopeless
    pending = slurm.parse_job("13|PENDING|PartitionNodeLimit|1-00:00:00||N/A|ipp-lab-cpu|ann|")
    assert pending.hopeless and pending.seconds_left == 86400 and pending.nodes == "" and not pending.batch
    assert not slurm.parse_job("14|PENDING|Resources|59:59||2026-12-06T01:00:00|x|ann|").hopeless
    assert not slurm.parse_job("15|TIMEOUT|TimeLimit|0:00|node01|2026-12-05T10:00:00|x|ann|").active
    assert slurm.parse_job("") is None
    assert slurm.expand_nodes("host[2-3,5],gpu01,n[08-10]x") == [
        "host2", "host3", "host5", "gpu01", "n08x", "n09x", "n10x"]
    assert slurm.expected(running, Allocation("a", 4)) == {  # one engine per CPU, by NODE@JOB
        "node01@12": 4, "node02@12": 4, "node03@12": 3, "gpu7@12": 1}
    assert set(slurm.expected(running, Allocation("a", 4, engines=2)).values()) == {2}
    assert running.gpus == {"gpu7": 2}
    assert slurm.expected(running, Allocation("a", 4, gpus="auto"))["gpu7@12"] == 2  # Slurm's binding
    assert slurm.expected(running, Allocation("a", 4, gpus="0,2,3"))["node01@12"] == 3
    assert [seconds(t) for t in ("90", "59:59", "04:00:00", "1-00:00:00", "2-3", "1-2:30")] == [
        5400, 3599, 14400, 86400, 183600, 95400]


@pytest.mark.parametrize("text, expected", [("59:59", "3599"), ("3:59:12", "14352"), ("1-00:00:00", "86400"),
                                            ("10", "600"), ("UNLIMITED", ""), ("", "")])
def test_the_job_reads_its_time_left_as_python_does(text, expected):
    from tasks.commands import program
    out = subprocess.run(["sh", "-c", program("steps/slurm/slurm_job.sh") + f'\nslurm_seconds "{text}"'],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
    if expected:
        assert seconds(text) == int(expected)


def test_the_hosts_listing_shows_the_allocations(tmp_path):
    (tmp_path / "hosts").write_text(CAMPUS_INI)
    listing = load_inventory(tmp_path).listing()
    assert [h["name"] for h in listing["hosts"]] == ["login01.campus.edu"]
    assert json.loads(json.dumps(listing))["allocations"][1] == {
        "name": "gpu_alloc", "nodes": 2, "partition": "gpu", "time": "90", "account": "lab42",
        "options": ["--gres=gpu:2", "--exclusive"], "engines": None, "threads": None, "gpus": "auto",
        "setup": "module load cuda/12.2", "master": False}
