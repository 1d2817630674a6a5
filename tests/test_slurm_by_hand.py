"""
``fab engines.script``: the batch script and the sbatch line it prints are those that
cluster.up's submit step sends to the login node, byte for byte, from the same inventory;
no host is contacted. The script submitted by hand on the real Slurm: tests/test_e2e_slurm_by_hand.py.
"""

import base64
import re
import shlex

import pytest

from tasks.commands import slurm
from tasks.inventory.allocations import Allocation
from tasks.inventory.folder import load_inventory
from tasks.inventory.settings import Settings
from tasks.ssh.fleet import HostResult
from tasks.steps.slurm import allocations
from tests.conftest import fab
from tests.sshhosts import write_inventory
from tests.test_slurm import CAMPUS_INI

#: A printed block: the here-document that writes the script, then the run folder and sbatch lines.
BLOCK = re.compile(r"^\(umask 077 && set -C && cat > (\S+)\) <<'IPP-END-OF-SCRIPT'\n(.*?\n)IPP-END-OF-SCRIPT\n[^\n]*\n(sbatch [^\n]*)$",
                   re.S | re.M)


class Recorder:
    """A fleet that keeps the program each host would get (nothing is sent) and answers that
    it could not run it."""

    def __init__(self):
        self.sent = {}

    def run(self, programs, timeout):
        self.sent.update({host.name: text for host, text in programs.items()})
        return {host.name: HostResult(host, "unreachable", reason="recorded") for host in programs}


def sent_submits(program):
    """``[(arguments of slurm_submit, the batch script)]`` of a program sent to the login node."""
    found = re.findall(r"^slurm_submit ([^\n]*) <<'IPP-END-OF-DATA'\n(.*?)\nIPP-END-OF-DATA$", program, re.S | re.M)
    return [(shlex.split(args), base64.b64decode(data).decode()) for args, data in found]


@pytest.mark.parametrize("shared", ["yes", "no"])
def test_the_printed_script_and_sbatch_line_are_what_the_submit_step_sends(tmp_path, monkeypatch, shared):
    folder = write_inventory(tmp_path / "inventory", CAMPUS_INI, CLUSTER_NAME="lab", SHARED_HOME=shared)
    monkeypatch.setenv("CLUSTER_INVENTORY", str(folder))
    inventory = load_inventory()
    fleet = Recorder()
    allocations.submit(fleet, inventory, inventory.allocations, allocations.AllocationsUp(),
                       engine_file="{}")
    [(login, program)] = fleet.sent.items()
    assert login == "login01.campus.edu"
    sent = sent_submits(program)
    assert [args[1] for args, _ in sent] == ["cpu_alloc", "gpu_alloc"]

    printed = fab("engines.script", inventory=folder, key="/nonexistent")  # no host: no key needed
    assert printed.returncode == 0, printed.stderr
    blocks = BLOCK.findall(printed.stdout)
    assert len(blocks) == 2, printed.stdout[-2000:]
    for (args, script), (path, shown, line) in zip(sent, blocks):
        assert shown == script  # byte for byte
        words = shlex.split(line)  # the shell words, $HOME and $(...) left as they are
        _, _, job_name, _, output, *options = args
        assert words[:3] == ["sbatch", "--parsable", f"--job-name={job_name}"]
        assert words[3] == "--output=" + (output or f"$HOME/.ipp-cluster/lab/$(uname -n)/slurm/{args[1]}-%j.out")
        assert words[4] == f"--comment=ipp-cluster lab {args[1]} of $(id -un)@$(uname -n)"
        assert words[5:] == [*options, path] and path == f"{job_name}.sh"
    assert "--gres=gpu:2 --exclusive ipp-lab-gpu_alloc.sh" in printed.stdout

    one = fab("engines.script", "--hosts=gpu*", inventory=folder)
    assert [path for path, _, _ in BLOCK.findall(one.stdout)] == ["ipp-lab-gpu_alloc.sh"]
    assert "after its SETUP" not in one.stdout  # the login node has none; the allocation's is in the script


def test_a_name_that_is_no_allocation_exits_2_naming_the_option(tmp_path):
    folder = write_inventory(tmp_path / "inventory", CAMPUS_INI)
    bad = fab("engines.script", "--hosts=cpu_alloc,gpu", inventory=folder)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("error: --hosts=cpu_alloc,gpu: gpu: no Slurm allocation of the "
                                  "inventory (its allocations: cpu_alloc, gpu_alloc)")


def test_without_allocations_it_says_so(tmp_path):
    folder = write_inventory(tmp_path / "inventory", "[master]\nlogin01\n\n[engines]\nnode1\n")
    plain = fab("engines.script", inventory=folder)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "the inventory has no Slurm allocation (a group with slurm_nodes=): nothing to submit\n"


def test_the_file_of_a_jobs_output_is_named_with_and_without_a_shared_home():
    report = ("12|FAILED|NonZeroExitCode|0:00|node01|2026-12-05T10:00:00|ipp-lab-cpu|ann|node01/0/|"
              "node01/10.1.0.11|0|node01=10.1.0.11|/home/ann/.ipp-cluster/lab/login01/slurm/cpu-12.out")
    job = slurm.parse_job(report)
    cpu = Allocation("cpu", 1)
    assert slurm.output_file(Settings(cluster_name="lab"), cpu, job) == \
        "/home/ann/.ipp-cluster/lab/login01/slurm/cpu-12.out"
    assert slurm.output_file(Settings(cluster_name="lab", shared_home=False), cpu, job) == \
        "~/.ipp-cluster/lab/node01@12/cpu-12.out on node01"
