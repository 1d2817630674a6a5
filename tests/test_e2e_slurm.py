"""
End to end: engines in a Slurm allocation, on a real Slurm (`tests.slurmhosts`): slurmctld on
host1, the login node and master, and a slurmd of 2 CPUs on each of host2-host5. The Slurm
commands run on the master over SSH, as on a campus cluster; the engines run as job steps.
"""

import base64
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tasks.commands.slurm import expand_nodes
from tests.conftest import FAB, PROJECT, engines_by_id, fab, leftovers, users, with_client, write_inventory
from tests.slurmhosts import FakeSlurm, why_not_available
from tests.waiting import wait_until

NODES = (2, 3, 4, 5)


@pytest.fixture(scope="module")
def slurm(fake_hosts):
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    with FakeSlurm(fake_hosts, nodes=NODES) as running:
        yield running


def inventory(folder, fake_hosts, name, port, group="slurm_nodes=4\nslurm_partition=cpu\nslurm_time=10",
              ssh_engines="", user="", env=sys.prefix, **settings):
    """A master on host1 (as *user*), an allocation cpu_alloc of *group*'s variables and, with
    *ssh_engines*, an SSH engine group of those host lines."""
    at = f"{user}@" if user else ""
    hosts = (f"[master]\n{at}127.0.2.1\n\n[engines:children]\ncpu_alloc\n"
             + ("ssh_engines\n\n[ssh_engines]\n" + ssh_engines + "\n" if ssh_engines else "\n")
             + f"[cpu_alloc]\n\n[cpu_alloc:vars]\n{group}\n")
    return write_inventory(folder, hosts, CLUSTER_ENV=env, CLUSTER_NAME=name, IPP_PROFILE=name,
                           JUPYTER_PORT=port, KNOWN_HOSTS=fake_hosts.known_hosts, **settings)


def runner(fake_hosts, folder):
    def run(*args, **kwargs):
        return fab(*args, inventory=folder, key=fake_hosts.client_key, **kwargs)
    return run


def status_of(run):
    """``cluster.status --json``: ``{row's host: row}``."""
    out = run("cluster.status", "--json")
    return {row["host"]: row for row in json.loads(out.stdout)["hosts"]}


def status_saying(run, word):
    """``cluster.status``'s run if its stderr has *word*, else None (for `wait_until`)."""
    status = run("cluster.status")
    return status if word in status.stderr else None


def held_said(name, job):
    """Whether the batch script of the cluster *name*'s *job* (of cpu_alloc, with a shared home:
    its output beside its record on the master) last said that it holds, its engines stopped."""
    [output] = Path.home().glob(f".ipp-cluster/{name}/*/slurm/cpu_alloc-{job}.out")
    said = [line for line in output.read_text().splitlines() if line.startswith("=== ")]
    return said[-1].endswith(": the engines stopped; the job runs on (engines.restart starts them)")


def ours(slurm, name):
    """The queue's jobs of the cluster *name* (any user): ``[id|state|name|user]``."""
    return [job for job in slurm.jobs() if f"|ipp-{name}-" in job]


def test_an_allocation_comes_up_is_watched_restarted_in_its_job_and_goes_down(
        slurm, fake_hosts, tmp_path):
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurm4", 18940,
                                       group="slurm_nodes=4\nslurm_time=10\nengines=2"))
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "submitted job" in up.stdout
        engines = engines_by_id("slurm4")
        assert sorted(host for host, _ in engines.values()) == sorted(
            [f"host{n}" for n in NODES] * 2)
        rows = status_of(run)
        job = rows["cpu_alloc"]["job"]
        assert job["state"] == "RUNNING" and job["nodes"] == "host[2-5]"
        assert 500 < job["seconds_left"] <= 600
        assert (rows["cpu_alloc"]["registered"], rows["cpu_alloc"]["expected"]) == (8, 8)
        nodes = {n: rows[f"host{n}@{job['id']}"] for n in NODES}  # NODE@JOB: what its engines register as
        assert all((row["registered"], row["expected"], row["allocation"]) == (2, 2, "cpu_alloc")
                   for row in nodes.values())
        assert run("cluster.status").returncode == 0
        again = run("cluster.up")  # all is up: the job is kept, no engine restarted
        assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout + again.stderr
        assert engines_by_id("slurm4") == engines

        restart = run("engines.restart")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        again = engines_by_id("slurm4")
        assert len(again) == 8 and not {pid for _, pid in again.values()} & {pid for _, pid in engines.values()}
        assert status_of(run)["cpu_alloc"]["job"]["id"] == job["id"]  # the same job: no new wait
        assert len(ours(slurm, "slurm4")) == 1
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"job {job['id']} ended" in down.stdout
    assert ours(slurm, "slurm4") == []
    assert leftovers(fake_hosts, (1, *NODES)) == {}
    assert set(slurm.wait_idle().values()) == {"idle"}
    again = run("cluster.down")
    assert again.returncode == 0 and "cpu_alloc: no job" in again.stdout, again.stdout + again.stderr


def test_what_slurm_refuses_is_said_in_its_words_and_nothing_is_submitted(slurm, fake_hosts, tmp_path):
    for group, said in [("slurm_nodes=4\nslurm_partition=nosuch", "invalid partition specified: nosuch"),
                        ("slurm_nodes=5", "Requested node configuration is not available")]:
        run = runner(fake_hosts, inventory(tmp_path / group[-6:], fake_hosts, "slurmbad", 18941, group=group))
        check = run("cluster.check")
        assert check.returncode == 1 and "cpu_alloc: Slurm refuses the request" in check.stderr, check.stderr
        assert said in check.stderr
        document = json.loads(run("cluster.check", "--json").stdout)
        assert not document["ok"] and [h["state"] for h in document["hosts"]] == ["ok", "refused"]
        assert said in document["hosts"][1]["problems"][0]
        up = run("cluster.up")
        assert up.returncode == 1 and said in up.stderr, up.stdout + up.stderr
        assert ours(slurm, "slurmbad") == []
        assert leftovers(fake_hosts, (1,)) == {}  # nothing started on the master either


def test_a_job_that_cannot_start_is_named_then_cancelled_and_another_users_job_is_untouched(
        slurm, fake_hosts, tmp_path):
    blocker = slurm.command("sbatch", "--parsable", "-N", "4", "-n", "8", "-J", "blocker", "-o", "/dev/null",
                            "--wrap", "sleep 600").strip()
    try:
        folder = inventory(tmp_path, fake_hosts, "slurmwait", 18942, SLURM_WAIT=6)
        run = runner(fake_hosts, folder)
        up = run("cluster.up")
        assert up.returncode == 1
        assert "PENDING (Resources)" in up.stdout, up.stdout
        assert "still PENDING (Resources) after 6 s: it was cancelled" in up.stderr, up.stderr
        assert ours(slurm, "slurmwait") == []

        # Ctrl-C while it waits cancels the job it submitted.
        env = dict(os.environ, CLUSTER_INVENTORY=str(folder), COLUMNS="200")
        process = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.up"], cwd=PROJECT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: any("|PENDING|" in job for job in ours(slurm, "slurmwait")), 60,
                   "the job submitted, pending", interval=0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)
        assert process.returncode == 130, out + err
        assert "were cancelled" in err, err
        assert ours(slurm, "slurmwait") == []
        assert any(job.startswith(f"{blocker}|RUNNING|blocker|root") for job in slurm.jobs())
    finally:
        runner(fake_hosts, folder)("cluster.down")
        slurm.command("scancel", blocker, check=False)


def test_a_job_cancelled_from_outside_is_named_and_up_repairs_it(slurm, fake_hosts, tmp_path):
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurmext", 18943,  # not renewed: not replaced
                                       group="slurm_nodes=2\nslurm_time=10\nslurm_renew=no"))
    try:
        assert run("cluster.up").returncode == 0
        job = status_of(run)["cpu_alloc"]["job"]["id"]
        slurm.command("scancel", job)
        status = wait_until(lambda: status_saying(run, "CANCELLED"), 60, "cluster.status naming the cancel",
                            interval=1)
        assert status.returncode == 1
        assert f"cpu_alloc: job {job} ended (CANCELLED): it was cancelled outside" in status.stderr, status.stderr
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        rows = status_of(run)
        assert rows["cpu_alloc"]["job"]["id"] != job and rows["cpu_alloc"]["registered"] == 2
    finally:
        assert run("cluster.down").returncode == 0
    assert ours(slurm, "slurmext") == []


def test_down_ends_the_recorded_job_of_an_allocation_renamed_in_the_inventory(slurm, fake_hosts, tmp_path):
    folder = inventory(tmp_path, fake_hosts, "slurmren", 18949, group="slurm_nodes=2\nslurm_time=10")
    run = runner(fake_hosts, folder)
    try:
        assert run("cluster.up").returncode == 0
        job = status_of(run)["cpu_alloc"]["job"]["id"]
        hosts = Path(folder) / "hosts"  # the user renames the group while its job runs
        hosts.write_text(hosts.read_text().replace("cpu_alloc", "renamed_alloc"))
        down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"cpu_alloc: job {job} ended" in down.stdout, down.stdout
    finally:
        run("cluster.down")
    assert ours(slurm, "slurmren") == []
    assert leftovers(fake_hosts, (1, *NODES)) == {}


def held_lines(run_args, inventory_folder, fake_hosts, count, timeout=120):
    """Start a fab task that holds until Ctrl-C (``cluster.connect``, ``cluster.tunnel``); the
    process and its first *count* lines, or a failure with its stderr."""
    env = dict(os.environ, CLUSTER_INVENTORY=str(inventory_folder), COLUMNS="200")
    process = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), *run_args], cwd=PROJECT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def one_more():
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            pytest.fail(f"{run_args} ended: {process.stderr.read()}")
        lines.append(line.rstrip("\n"))
        return len(lines) >= count

    wait_until(one_more, timeout, f"{count} lines of {run_args}", interval=0)
    return process, lines


def release(process):
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0, process.stderr.read()


def test_the_controller_and_jupyter_run_in_the_allocation_reached_through_the_login_node(
        slurm, fake_hosts, tmp_path):
    folder = inventory(tmp_path, fake_hosts, "slurmjob", 18956,
                       group="slurm_nodes=2\nslurm_time=10\nengines=1\nslurm_master=yes")
    run = runner(fake_hosts, folder)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        rows = status_of(run)
        job = rows["cpu_alloc"]["job"]
        first = expand_nodes(job["nodes"])[0]
        assert f"cpu_alloc: the controller and Jupyter start on {first}, the first node of job {job['id']}" in (
            up.stdout)
        master = rows[first]  # the master's row is the node's
        assert master["roles"] == ["master"] and master["problems"] == [], master
        assert sorted(master["sessions"]) == ["slurmjob-controller", "slurmjob-jupyter"]
        assert rows["cpu_alloc"]["registered"] == 2 and "127.0.2.1" not in rows  # the login node: no row
        assert leftovers(fake_hosts, (1,)) == {}  # nothing of the cluster on the login node
        connect, printed = held_lines(["cluster.connect"], folder, fake_hosts, 4)
        try:  # ipyparallel's tunnel takes one hop: fab forwards the controller's ports itself
            assert printed[-1].startswith("rc = ipp.Client(") and "sshserver" not in printed[-1]
            counted = with_client("print(json.dumps(collections.Counter(rc[:].apply_sync(socket.gethostname))))",
                                  connect=printed[1:])
            assert counted == {node: 1 for node in expand_nodes(job["nodes"])}
        finally:
            release(connect)
        tunnel, printed = held_lines(["cluster.tunnel"], folder, fake_hosts, 1)
        try:
            port, token = re.fullmatch(r"Jupyter: http://127\.0\.0\.1:(\d+)/\?token=(\w+)", printed[0]).groups()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                             headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=20) as response:
                assert response.status == 200
        finally:
            release(tunnel)
        restart = run("engines.restart")  # in the same job, the controller untouched
        assert restart.returncode == 0, restart.stdout + restart.stderr
        rows = status_of(run)
        assert rows["cpu_alloc"]["job"]["id"] == job["id"] and rows["cpu_alloc"]["registered"] == 2
        assert rows[first]["controller_restarts"] == 0 and rows[first]["problems"] == []
        url = run("master.url")  # every task that talks to the master reaches the node
        assert url.returncode == 0 and url.stdout.splitlines()[-1].startswith("http://127.0.0.1:18956/?token=")
        logs = run("cluster.logs", "--role=master", "--lines=1")
        assert logs.returncode == 0 and logs.stdout.startswith(first), logs.stdout + logs.stderr
        stop = run("engines.stop")  # the engines go; the job, with the controller, runs on
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert f"cpu_alloc: engines stopped; job {job['id']} runs on" in stop.stdout
        rows = status_of(run)
        assert rows["cpu_alloc"]["job"]["state"] == "RUNNING" and rows["cpu_alloc"]["registered"] == 0
        assert rows[first]["sessions"] and rows[first]["problems"] == []
        # none comes back by itself: the job's script says it holds (a new step would follow
        # that line at once), and status says why
        wait_until(lambda: held_said("slurmjob", job["id"]), 60, "the job's script saying it holds")
        assert status_of(run)["cpu_alloc"]["registered"] == 0
        status = run("cluster.status")
        assert status.returncode == 1
        assert f"cpu_alloc: job {job['id']} runs without its engines (engines.stop): fab engines.start" in (
            status.stderr)
        start = run("engines.start")  # and they start again, in the same job
        assert start.returncode == 0, start.stdout + start.stderr
        assert status_of(run)["cpu_alloc"]["registered"] == 2
        down = run("cluster.down")  # the controller stops, then the job ends
        assert down.returncode == 0, down.stdout + down.stderr
        assert ours(slurm, "slurmjob") == [] and leftovers(fake_hosts, (1, *NODES)) == {}
        gone = run("master.url")
        assert gone.returncode == 1
        assert "error: cpu_alloc: no job: the controller and Jupyter run in it (slurm_master=yes)" in gone.stderr
        up = run("cluster.up")  # a new job
        assert up.returncode == 0, up.stdout + up.stderr
        job = status_of(run)["cpu_alloc"]["job"]
        slurm.command("scancel", job["id"])  # the job ends from outside: its controller with it
        wait_until(lambda: not ours(slurm, "slurmjob") and not leftovers(fake_hosts, (1, *NODES)), 90,
                   "the job gone, and its controller with it", interval=1)
        status = run("cluster.status")  # nothing runs: stopped, and how
        assert status.returncode == 3, status.stdout + status.stderr
        assert f"cpu_alloc: job {job['id']} ended (CANCELLED): it was cancelled outside" in status.stderr
    finally:
        down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
    assert ours(slurm, "slurmjob") == [] and leftovers(fake_hosts, (1, *NODES)) == {}


def test_ssh_hosts_and_two_allocations_make_one_cluster(slurm, fake_hosts, tmp_path):
    folder = inventory(tmp_path, fake_hosts, "slurmmix", 18944, group="slurm_nodes=2\nslurm_time=10",
                       ssh_engines="127.0.2.1 engines=2")
    hosts = (folder / "hosts").read_text().replace("[engines:children]\n", "[engines:children]\nsmall\n")
    (folder / "hosts").write_text(hosts + "\n[small]\n\n[small:vars]\nslurm_nodes=1\nslurm_time=10\n")
    run = runner(fake_hosts, folder)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        hosts = sorted(host for host, _ in engines_by_id("slurmmix").values())
        assert hosts[:2] == ["host1", "host1"] and len(hosts) == 5 and set(hosts[2:]) <= {f"host{n}" for n in NODES}
        assert len(ours(slurm, "slurmmix")) == 2
        assert run("cluster.status").returncode == 0
        restart = run("engines.restart", "--hosts=small")  # that allocation alone
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert "small" in restart.stdout and "cpu_alloc" not in restart.stdout
        assert run("engines.status", "--hosts=small").returncode == 0
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert ours(slurm, "slurmmix") == [] and leftovers(fake_hosts, (1, *NODES)) == {}


def decoded(script):
    """*script* and every base64 here-document in it, decoded (and those in them), one text."""
    parts = [script]
    for data in re.findall(r"<<'IPP-END-OF-DATA'\n(.*?)\nIPP-END-OF-DATA", script, re.S):
        try:
            parts.append(decoded(base64.b64decode(data).decode()))
        except (ValueError, UnicodeDecodeError):  # the programs, a tar.gz
            continue
    return "\n".join(parts)


def test_without_a_shared_home_the_key_comes_over_ssh_and_the_output_stays_in_the_users_folder(
        slurm, fake_hosts, tmp_path):
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurmnfs", 18948,
                                       group="slurm_nodes=1\nslurm_time=10", SHARED_HOME="no"))
    with users("ippslurmspy"):
        # Another user takes the job ids that come next (a job of theirs says where they are)
        # in the /tmp that every node has: a file of theirs at each name a job's output could have.
        theirs = int(slurm.command("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true",
                                   user="ippslurmspy").strip())
        spy = pwd.getpwnam("ippslurmspy")
        traps = [Path(f"/tmp/ipp-root-slurmnfs-cpu_alloc-{theirs + n}.out") for n in range(1, 31)]
        for trap in traps:
            trap.touch(mode=0o600)
            os.chown(trap, spy.pw_uid, spy.pw_gid)
        try:
            up = run("cluster.up")
            assert up.returncode == 0, up.stdout + up.stderr
            rows = status_of(run)
            job = rows["cpu_alloc"]["job"]
            assert (rows["cpu_alloc"]["registered"], rows["cpu_alloc"]["expected"]) == (1, 1)
            key = json.loads(Path("/root/.ipython/profile_slurmnfs/security/ipcontroller-engine.json")
                             .read_text())["key"]
            script = slurm.command("scontrol", "write", "batch_script", job["id"], "-")
            assert script.startswith("#!/bin/sh\n") and key not in decoded(script)  # Slurm's admins read it
            assert [t.name for t in traps if t.stat().st_size] == []
            node = expand_nodes(job["nodes"])[0]  # the output: in the user's folder on the node
            output = Path(f"/root/.ipp-cluster/slurmnfs/{node}@{job['id']}/cpu_alloc-{job['id']}.out")
            assert f"step of job {job['id']}" in output.read_text()
            assert output.parent.stat().st_mode & 0o777 == 0o700
        finally:
            down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert ours(slurm, "slurmnfs") == []
        for trap in traps:
            trap.unlink()


def test_a_plain_users_allocation_is_theirs_alone(slurm, fake_hosts, shared_env, tmp_path):
    with users("ippslurm"):
        run = runner(fake_hosts, inventory(tmp_path / "user", fake_hosts, "slurmuser", 18945,
                                           group="slurm_nodes=2\nslurm_time=10", user="ippslurm",
                                           env=shared_env))
        try:
            up = run("cluster.up")
            assert up.returncode == 0, up.stdout + up.stderr
            [job] = ours(slurm, "slurmuser")
            assert job.endswith("|RUNNING|ipp-slurmuser-cpu_alloc|ippslurm")
            # root's cluster of the same name never touches it, even with its id in root's record.
            root = runner(fake_hosts, inventory(tmp_path / "root", fake_hosts, "slurmuser", 18946,
                                                group="slurm_nodes=2\nslurm_time=10"))
            record = Path("/root/.ipp-cluster/slurmuser/host1/slurm/cpu_alloc.job")
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(job.split("|")[0] + "\n")
            for task in ("cluster.down", "engines.restart", "engines.stop"):
                root(task)
            assert ours(slurm, "slurmuser") == [job]
            assert run("cluster.status").returncode == 0
        finally:
            down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert ours(slurm, "slurmuser") == []


@pytest.mark.slow
def test_at_the_time_limit_the_engines_stop_cleanly_and_status_names_the_timeout(slurm, fake_hosts, tmp_path):
    run = runner(fake_hosts, inventory(tmp_path, fake_hosts, "slurmtime", 18947,  # not renewed: it ends
                                       group="slurm_nodes=1\nslurm_time=1\nslurm_renew=no"))
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        job = status_of(run)["cpu_alloc"]["job"]["id"]
        code = ("import time\nstarted = time.monotonic()\n"
                "try:\n    c[:].apply_async(time.sleep, 600).get(timeout=120)\n    said = 'no error'\n"
                "except Exception as error:\n    said = type(error).__name__ + ': ' + str(error)\n"
                "print(json.dumps([said, time.monotonic() - started]))")
        said, seconds = with_client(code, "slurmtime", timeout=180)
        assert seconds < 80 and "Timeout" not in said and said != "no error", said
        status = wait_until(lambda: status_saying(run, "TIMEOUT"), 90, "cluster.status naming the time limit",
                            interval=2)
        assert f"cpu_alloc: job {job} ended (TIMEOUT): it reached its time limit" in status.stderr, status.stderr
        assert leftovers(fake_hosts, NODES) == {}
    finally:
        assert run("cluster.down").returncode == 0
