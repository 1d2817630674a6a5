"""
The keeper of an allocation's jobs without a Slurm: the inventory's ``slurm_jobs``,
``slurm_idle`` and ``slurm_renew`` (each value checked, with its file and line), and the
keeper's decision (``tasks/remote/master/renewal.py``): which jobs to submit, given the
recorded jobs, their time left and the queue's wait. The keeper on a real Slurm is in
tests/test_e2e_keeper.py.
"""

import pytest

from tasks.inventory.folder import InventoryError, load_inventory, parse_inventory
from tasks.remote.master.renewal import Job, Policy, decide, margin, seconds, stop_margin

GROUP = "[master]\nm\n[engines:children]\na\n[a]\n[a:vars]\nslurm_nodes=2\nslurm_time=3\n"


def allocation(extra, kind="ini"):
    if kind == "yaml":
        text = ("all:\n  children:\n    master: {hosts: {m: }}\n    engines:\n      children:\n"
                f"        a:\n          vars: {{slurm_nodes: 1, {extra}}}\n")
    else:
        text = GROUP + extra
    [found] = parse_inventory(text, kind=kind)[2]
    return found


def test_an_allocation_keeps_one_job_renewed_by_default():
    found = allocation("")
    assert (found.jobs, found.idle, found.renew) == ((1, 1), 300, None)


@pytest.mark.parametrize("extra, jobs, idle, renew", [
    ("slurm_jobs=3\n", (3, 3), 300, None),
    ("slurm_jobs=0-4\nslurm_idle=60\n", (0, 4), 60, None),
    ("slurm_jobs=2-2\nslurm_renew=no\n", (2, 2), 300, 0),
    ("slurm_renew=yes\n", (1, 1), 300, None),
    ("slurm_renew=600\n", (1, 1), 300, 600),
])
def test_the_keepers_variables_are_read(extra, jobs, idle, renew):
    found = allocation(extra)
    assert (found.jobs, found.idle, found.renew) == (jobs, idle, renew)


def test_yaml_says_the_same():
    found = allocation("slurm_jobs: 1-3, slurm_idle: 120, slurm_renew: false", kind="yaml")
    assert (found.jobs, found.idle, found.renew) == ((1, 3), 120, 0)
    assert allocation("slurm_jobs: 2, slurm_renew: 90", kind="yaml").jobs == (2, 2)


@pytest.mark.parametrize("extra, reason", [
    ("slurm_jobs=0\n", "slurm_jobs='0' must be a number of jobs of at least 1 (2), or MIN-MAX"),
    ("slurm_jobs=3-2\n", "slurm_jobs='3-2' must be"),
    ("slurm_jobs=0-0\n", "slurm_jobs='0-0' must be"),
    ("slurm_jobs=many\n", "slurm_jobs='many' must be"),
    ("slurm_jobs=-2\n", "slurm_jobs='-2' must be"),
    ("slurm_idle=0\n", "slurm_idle='0' must be a whole number of seconds of at least 1"),
    ("slurm_idle=5m\n", "slurm_idle='5m' must be"),
    ("slurm_renew=soon\n", "slurm_renew='soon' must be yes, no, or the seconds before a job's end"),
    ("slurm_renew=0\n", "slurm_renew='0' must be"),
])
def test_a_bad_value_is_an_error_naming_file_and_line(extra, reason):
    with pytest.raises(InventoryError) as error:
        parse_inventory(GROUP + extra, kind="ini")
    assert str(error.value).startswith("hosts:9: "), str(error.value)
    assert reason in str(error.value)


def test_a_host_cannot_hold_them_nor_the_controllers_allocation_have_several_jobs():
    with pytest.raises(InventoryError, match=r"^hosts:4: slurm_jobs= belongs to a group without hosts"):
        parse_inventory("[master]\nm\n[engines]\nn slurm_jobs=2\n", kind="ini")
    with pytest.raises(InventoryError, match=r"^hosts:6: \[a\] has slurm_master=yes and slurm_jobs=: "
                       "the controller's allocation is one job"):
        parse_inventory(GROUP + "slurm_master=yes\nslurm_jobs=2\n", kind="ini")


def test_without_a_shared_home_nothing_is_renewed_and_several_jobs_are_an_error(tmp_path):
    (tmp_path / "hosts").write_text(GROUP)
    (tmp_path / "cluster.env").write_text("SHARED_HOME=no\n")
    assert load_inventory(tmp_path).allocations[0].renew == 0
    (tmp_path / "hosts").write_text(GROUP + "slurm_jobs=2\n")
    with pytest.raises(InventoryError, match="cluster.env:1: SHARED_HOME=no, but a has slurm_jobs=: "
                       "the keeper submits its jobs"):
        load_inventory(tmp_path)


THREE_MINUTES = Policy(jobs=1, time=180)


def test_the_margin_hides_the_engines_stop_the_queue_wait_and_the_start_within_half_the_job():
    assert stop_margin(180) == 45 and stop_margin(3600) == 120 and stop_margin(None) == 120
    assert margin(Policy(time=3600), wait=30) == 120 + 30 + 60
    assert margin(THREE_MINUTES, wait=0) == 90  # 45 + 60 = 105, at most half of 180
    assert margin(Policy(time=180, renew=100), wait=500) == 100  # slurm_renew=100


def test_a_job_far_from_its_end_is_left_alone():
    decision = decide([Job("7", "RUNNING", 150)], THREE_MINUTES)
    assert decision.submit == () and decision.lasting == 1


def test_a_job_within_the_margin_gets_one_successor_and_one_only():
    decision = decide([Job("7", "RUNNING", 80)], THREE_MINUTES)
    assert decision.submit == ("successor of job 7, which ends in 80 s (renewed 90 s before its end)",)
    assert decision.ending == ("7",)
    # its successor queued (or running): nothing more, round after round, keeper restarted or not
    assert decide([Job("7", "RUNNING", 70), Job("8", "PENDING", 180)], THREE_MINUTES).submit == ()
    assert decide([Job("7", "RUNNING", 10), Job("8", "RUNNING", 175)], THREE_MINUTES).submit == ()


def test_a_job_that_ended_or_is_gone_is_replaced_and_the_count_is_restored():
    assert len(decide([Job("7", "TIMEOUT"), Job("8", "CANCELLED")], Policy(jobs=2, time=180)).submit) == 2
    assert decide([Job("7", "GONE")], THREE_MINUTES).submit == ("0 of 1 jobs queued or running",)
    assert len(decide([], Policy(jobs=3, time=180)).submit) == 3


@pytest.mark.parametrize("jobs", [
    [Job("1", "RUNNING", 20), Job("2", "RUNNING", 30), Job("3", "RUNNING", 170)],
    [Job("1", "RUNNING", 20), Job("2", "PENDING", 180), Job("3", "RUNNING", 40), Job("4", "RUNNING", 100)],
    [Job("1", "RUNNING", None), Job("2", "COMPLETING", 0), Job("3", "PENDING", 180)],
])
def test_never_more_than_the_jobs_plus_one_successor_per_ending_job(jobs):
    policy = Policy(jobs=3, time=180)
    decision = decide(jobs, policy)
    active = [job for job in jobs if job.active]
    assert len(active) + len(decision.submit) <= policy.jobs + len(decision.ending)
    after = jobs + [Job(f"new{i}", "PENDING", 180) for i in range(len(decision.submit))]
    assert decide(after, policy).submit == ()  # the same jobs again: nothing more


def test_slurm_renew_no_keeps_the_count_but_renews_nothing():
    policy = Policy(jobs=2, time=180, renew=0)
    assert decide([Job("1", "RUNNING", 5), Job("2", "RUNNING", 5)], policy).submit == ()
    assert len(decide([Job("1", "RUNNING", 5)], policy).submit) == 1  # cluster.up's top-up


@pytest.mark.parametrize("text, expected", [
    ("2:30", 150), ("1:02:03", 3723), ("1-00:00:10", 86410), ("UNLIMITED", None), ("INVALID", None)])
def test_squeue_time_left_is_read(text, expected):
    assert seconds(text) == expected


def test_the_successor_is_named_for_the_job_that_has_none_the_latest_to_end():
    # job 3 succeeded job 2, and is itself within the margin: its successor is the one wanted
    decision = decide([Job("2", "RUNNING", 39), Job("3", "RUNNING", 80)], Policy(jobs=1, time=120, renew=80))
    assert decision.submit == ("successor of job 3, which ends in 80 s (renewed 80 s before its end)",)


def test_jobs_that_end_as_soon_as_they_start_are_not_submitted_again_and_again(tmp_path, monkeypatch):
    """Stand-ins for sbatch (ids 101, 102, ...) and for squeue (it knows no job: each ended
    at once): the keeper replaces the group's job, then, past its jobs and `STORM` more in
    the window, submits none and says why."""
    from tasks.remote.master import keeper
    bin_dir, run = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nn=$(cat {tmp_path}/n 2>/dev/null || echo 100)\n'
                                    f'n=$((n + 1)); echo $n > {tmp_path}/n; echo $n\n')
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    for program in ("sbatch", "squeue"):
        (bin_dir / program).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    (run / "slurm").mkdir(parents=True)
    (run / "slurm" / "a.job").write_text("100\n")
    (run / "slurm" / "a.script").write_text("#!/bin/sh\n")
    (run / "slurm" / "a.sbatch").write_bytes(b"/dev/null\0")
    (run / "slurm" / "keeper.json").write_text('{"name": "lab", "groups": {"a": {"jobs": 1, "time": 1800}}}')
    kept = keeper.Keeper(str(run))
    for _ in range(10):
        assert kept.round()
    assert (tmp_path / "n").read_text().strip() == str(100 + 1 + keeper.STORM)
    state = (run / "slurm" / "keeper.state").read_text()
    assert "none more for a while" in state


def test_the_controllers_job_is_never_said_renewed_though_the_keeper_runs():
    """`cluster.status` warns of little time left unless the keeper renews the job: the
    ``slurm_master`` allocation's job is never renewed, whatever the keeper does."""
    from types import SimpleNamespace
    from tasks.steps.status import _keeper
    job = SimpleNamespace(active=True)
    facts = {"keeper": "running", "keeper_state": "{}"}
    master = SimpleNamespace(name="m", renew=None, master=True)
    engines = SimpleNamespace(name="a", renew=None, master=False)
    assert _keeper(master, facts, job)["renews"] is False
    assert _keeper(engines, facts, job)["renews"] is True
