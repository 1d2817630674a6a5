"""
End to end on the test Slurm (`tests.slurmhosts`), as dask-jobqueue's "How to debug" page asks
of a user: the batch script and sbatch line that ``fab engines.script`` prints, submitted by
hand on the login node, start a job; the output of a job that failed is where
``cluster.status`` says it is.
"""

import json
import shutil
import subprocess
from pathlib import Path

from tests.test_e2e_slurm import inventory, ours, runner, slurm  # noqa: F401 (slurm: the fixture)
from tests.waiting import wait_until


def test_the_printed_script_submitted_by_hand_starts_a_job(slurm, fake_hosts, tmp_path):  # noqa: F811
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurmhand", 18957,
                                       group="slurm_nodes=1\nslurm_time=10"))
    printed = run("engines.script", "--hosts=cpu_alloc")
    assert printed.returncode == 0, printed.stderr
    assert ours(slurm, "slurmhand") == []  # nothing was submitted
    by_hand = Path.home() / "slurmhand-by-hand"  # the home, which the hosts share (not /tmp)
    by_hand.mkdir(exist_ok=True)
    login = fake_hosts.hosts[0]  # host1, the master: the lines run in a shell there
    submitted = subprocess.run(["nsenter", "-t", str(login.init_pid), "-n", "-m", "-u", "-p", "sh", "-s"],
                               input=f"cd {by_hand}\n" + printed.stdout, capture_output=True, text=True,
                               timeout=60)
    try:
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.strip()  # sbatch --parsable: the job's id
        assert job.isdigit(), submitted.stdout
        assert (by_hand / "ipp-slurmhand-cpu_alloc.sh").read_text().startswith("#!/bin/sh\n")
        wait_until(lambda: f"{job}|RUNNING|ipp-slurmhand-cpu_alloc|root" in slurm.jobs(), 60,
                   "the job submitted by hand running")
        # its output where sbatch was told, in the master's run folder: the batch script runs
        output = Path.home() / f".ipp-cluster/slurmhand/host1/slurm/cpu_alloc-{job}.out"
        wait_until(lambda: output.exists() and f": step of job {job} on host" in output.read_text(), 30,
                   f"the batch script starting the engines' step, in {output}")
    finally:
        shutil.rmtree(by_hand)
        for line in ours(slurm, "slurmhand"):
            slurm.command("scancel", line.split("|")[0], check=False)
    wait_until(lambda: ours(slurm, "slurmhand") == [], 60, "the job cancelled")


def test_the_output_of_a_job_that_failed_is_named_by_status(slurm, fake_hosts, tmp_path):  # noqa: F811
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurmfail", 18955,
                                       group="slurm_nodes=1\nslurm_time=10\n"
                                             "setup='echo the module is missing; false'",
                                       ENGINE_TIMEOUT=20))
    try:
        up = run("cluster.up")
        assert up.returncode == 1, up.stdout + up.stderr
        def failed():
            row = json.loads(run("cluster.status", "--json").stdout)["hosts"]
            row = next(r for r in row if r["host"] == "cpu_alloc")
            return row if (row["job"] or {}).get("state") == "FAILED" else None
        row = wait_until(failed, 60, "cluster.status naming the failed job", interval=1)
        job = row["job"]["id"]
        path = Path.home() / f".ipp-cluster/slurmfail/host1/slurm/cpu_alloc-{job}.out"
        assert row["job"]["output"] == str(path)
        assert "SETUP failed (exit 1): the module is missing" in path.read_text(), (
            up.stdout + up.stderr + run("cluster.status").stderr)
        status = run("cluster.status")
        assert status.returncode == 1
        assert f"cpu_alloc: job {job} ended (FAILED): its batch script failed" in status.stderr, status.stderr
        assert f"its output: {path};" in status.stderr.replace("\n", " "), status.stderr
    finally:
        run("cluster.down")
    assert ours(slurm, "slurmfail") == []
