"""
End to end: the keeper of an allocation's jobs on the real Slurm of the tests
(`tests.slurmhosts`, as in tests/test_e2e_slurm.py): a job of 2 minutes is renewed before its
end, so that the cluster always has engines; a ``kill -9`` of the keeper is followed by its
restart, which submits nothing more; ``cluster.down`` leaves no job and no keeper.
"""

import os
import re
import signal
from pathlib import Path

from tasks.commands.slurm import ACTIVE
from tasks.inventory.allocations import seconds
from tasks.remote.master.keeper import LINE
from tests.conftest import leftovers, with_client
from tests.test_e2e_slurm import NODES, inventory, ours, runner, slurm, status_of  # noqa: F401 (a fixture)
from tests.waiting import wait_until

#: A line of the keeper's log saying a successor's submit: its job, the job it succeeds.
SUCCESSOR = re.compile(r"^=== keeper [0-9-]+ [0-9:]+: submit cpu_alloc job ([0-9]+): successor of job ([0-9]+),",
                       re.M)


def keeper_log(name):
    """The keeper's log; every line of the keeper's in it has the form its module says."""
    [log] = Path.home().glob(f".ipp-cluster/{name}/*/{name}-keeper.log")
    text = log.read_text()
    said = [line for line in text.splitlines() if line.startswith("=== keeper ")]
    assert all(LINE.match(line) for line in said), said
    return text


def keeper_pid(name):
    """The pid of the cluster *name*'s keeper (the program, not its nanny), or None."""
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"master.keeper" in words and b"shared.nanny" not in words and any(
                f"/.ipp-cluster/{name}/".encode() in word for word in words):
            return int(entry.name)
    return None


class Watch:
    """What a user sees, sampled while the test waits: the engines the controller has, and
    this cluster's jobs that Slurm holds (queued or running)."""

    def __init__(self, slurm, name):
        self.slurm, self.name = slurm, name
        self.engines, self.active, self.ids = [], [], []

    def sample(self):
        """Sample both; the ids of the jobs Slurm holds."""
        self.ids.append(set(with_client("print(json.dumps(c.ids))", self.name)))  # a new engine: a new id
        self.engines.append(len(self.ids[-1]))
        said = self.slurm.command("squeue", "-h", "-o", "%i|%T|%L|%j", check=False).split()
        jobs = [job.split("|") for job in said if job.endswith(f"|ipp-{self.name}-cpu_alloc")]
        self.active.append([(job[0], seconds(job[2]) if job[1] == "RUNNING" else None)
                            for job in jobs if job[1] in ACTIVE])
        return [job for job, _ in self.active[-1]]

    def overlaps(self, renew):
        """The samples with more jobs than 1 and, for each job within *renew* s of its end
        (and a few s more: squeue rounds, the keeper looks every 5 s), its one successor."""
        return [jobs for jobs in self.active
                if len(jobs) > 1 + sum(left is not None and left <= renew + 10 for _, left in jobs)]


def test_a_short_job_is_renewed_before_its_end_and_a_killed_keeper_submits_no_extra_job(
        slurm, fake_hosts, tmp_path):  # noqa: F811 (the fixture)
    name = "slurmkeep"
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, name, 18950,
                                       group="slurm_nodes=1\nslurm_time=2\nslurm_renew=80\nengines=1"))
    watch = Watch(slurm, name)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        first = status_of(run)["cpu_alloc"]["job"]["id"]
        # 80 s before its end (about 40 s after its start): its successor, and only one
        successors = wait_until(lambda: watch.sample() and SUCCESSOR.findall(keeper_log(name)), 120,
                                "the keeper's submit of a successor", interval=1)
        assert successors == [(successors[0][0], first)], keeper_log(name)
        killed = keeper_pid(name)
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: keeper_pid(name) not in (None, killed), 30, "the keeper started again")
        wait_until(lambda: "restart: the keeper ended (signal 9 (SIGKILL))" in keeper_log(name), 10,
                   "the nanny's line in the keeper's log")  # screen writes it within 1 s
        # the first job ends (its engines stop 30 s before): engines are there all along
        wait_until(lambda: first not in watch.sample(), 150, f"the end of job {first}", interval=1)
        wait_until(lambda: watch.sample() and watch.engines[-1] >= 1, 60, "the successor's engine", interval=1)
        assert min(watch.engines) >= 1, watch.engines
        assert watch.overlaps(80) == [], watch.active  # 1 job, and 1 successor for each that ends
        log = keeper_log(name)
        succeeded = [of for _, of in SUCCESSOR.findall(log)]
        assert len(succeeded) == len(set(succeeded)), log  # one successor per job, restart or not
        wait_until(lambda: f"end cpu_alloc job {first}: it ended (" in keeper_log(name), 30,
                   "the keeper's line of the first job's end")  # it looks every 5 s
        # the successor is now the job that fab's commands act on (the keeper moved its record)
        row = wait_until(lambda: (row := status_of(run)["cpu_alloc"])["job"]["id"] != first and row, 30,
                         "the successor recorded")
        kept = row["keeper"]
        assert kept["state"] == "running" and kept["running"] >= 1 and kept["decision"], kept
        assert "keeper: " in run("cluster.status").stdout
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert ours(slurm, name) == []
    assert keeper_pid(name) is None
    assert leftovers(fake_hosts, (1, *NODES)) == {}


def test_slurm_jobs_keeps_that_many_jobs_and_a_job_cancelled_from_outside_is_replaced(
        slurm, fake_hosts, tmp_path):  # noqa: F811 (the fixture)
    name = "slurmtwo"
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, name, 18951,
                                       group="slurm_nodes=1\nslurm_time=10\nslurm_jobs=2\nengines=1"))
    watch = Watch(slurm, name)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        jobs = wait_until(lambda: len(watch.sample()) == 2 and watch.engines[-1] == 2 and watch.active[-1], 90,
                          "two jobs, an engine each", interval=1)
        row = wait_until(lambda: (row := status_of(run)["cpu_alloc"])["keeper"]["running"] == 2 and row, 30,
                         "the keeper's view of its two jobs")
        assert row["keeper"]["state"] == "running", row
        gone, engines = jobs[-1][0], watch.ids[-1]
        slurm.command("scancel", gone)
        wait_until(lambda: gone not in watch.sample() and len(watch.active[-1]) == 2 and watch.engines[-1] == 2
                   and watch.ids[-1] != engines, 90, "a job in its place, and its engine", interval=1)
        # its end, and a second submit (cluster.up's top-up was the first), each said on a line
        wait_until(lambda: re.search(rf"^=== keeper [0-9-]+ [0-9:]+: end cpu_alloc job {gone}: (it ended "
                                     r"\(CANCELLED\)|Slurm no longer knows it)$", keeper_log(name), re.M)
                   and len(re.findall(r": submit cpu_alloc job [0-9]+: 1 of 2 jobs queued or running$",
                                      keeper_log(name), re.M)) == 2, 15,
                   "the keeper's lines of its end and its replacement")  # screen writes its log every second
        assert max(map(len, watch.active)) <= 2, watch.active  # none of them ends: never a third
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert ours(slurm, name) == []
    assert keeper_pid(name) is None
    assert leftovers(fake_hosts, (1, *NODES)) == {}
