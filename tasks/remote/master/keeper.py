"""
The keeper of a cluster's Slurm jobs, on the login node (the master), while no ``fab`` runs::

    python RUN_DIR/ipp_remote master.keeper RUN_DIR [--once]

The step ``start_keeper`` (``tasks/remote/steps/slurm/keeper.sh``) writes its plan,
``RUN_DIR/slurm/keeper.json`` (``{"name": CLUSTER, "groups": {GROUP: {"jobs": N, "time": S,
"renew": S|null|0}}}``), runs it once (``--once``: each group topped up to its jobs, for
``cluster.up``), then in the screen session ``NAME-keeper`` under the nanny
(``shared/nanny.py``: restarted after a crash), every `POLL` s. ``stop_keeper`` ends it
before ``cluster.down`` cancels the jobs.

It knows a group's jobs from their records alone (``slurm/GROUP.job``, the one ``fab``'s
steps act on, and ``slurm/GROUP+ID.job`` for the others; see ``slurm.sh``), and from what
squeue says of the jobs of this user with the group's job name: nothing of its own
survives a restart but these, so that a keeper started again submits nothing more than the
one before would have. A group without its ``GROUP.job`` record (``engines.stop``,
``cluster.down``: fab removes it) is not kept; a group of ``slurm_renew=no`` is only topped
up by ``--once``. Each round, under the cluster's lock (``lock`` in ``lib.sh``): the ended
jobs' records go (the last one's stays, for ``cluster.status``), a running one becomes
``GROUP.job`` when that one ended, then ``renewal.decide`` says what to submit; each submit
uses the script and options ``fab`` last submitted (``GROUP.script``, ``GROUP.sbatch``).

Its log (the screen session's) says each submit and end with its reason, on lines of
`LINE`'s form; ``RUN_DIR/slurm/keeper.state`` holds each group's last decision and its jobs queued or
running (JSON: ``{GROUP: {"at": TIME, "decision": TEXT, "jobs": {ID: STATE}}}``) for
``cluster.status``.
"""

import fcntl
import json
import os
import pwd
import re
import subprocess
import sys
import time
from datetime import datetime

from .renewal import Job, Policy, decide, margin, seconds

POLL = 10.0  #: seconds between two rounds
LOCK_WAIT = 20.0  #: seconds a round waits for the cluster's lock (a fab's step holds it)
#: Seconds squeue and sbatch may each take (a busy slurmctld takes tens), and a round may
#: hold the lock before it leaves the other groups to the next: a fab's step waits 60 s
#: for the lock (``lock`` in lib.sh).
SQUEUE_WAIT, SBATCH_WAIT, HOLD = 20.0, 20.0, 30.0
#: At most this many jobs a group may submit beyond its plan's in `STORM_WINDOW` s, or half
#: its jobs' time if shorter (renewals submit one a job's time): a job that ends at once, or
#: one an admin cancels again and again, is not submitted again and again; the keeper says so.
STORM, STORM_WINDOW = 3, 600.0
#: A line of the keeper's log: ``=== keeper DATE TIME: submit|end|error GROUP ...``
LINE = re.compile(r"^=== keeper ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}): "
                  r"(submit|end|error) ([A-Za-z0-9_][A-Za-z0-9_.-]*)(?: job ([0-9]+))?: (.*)$")
#: What of the keeper's environment its jobs must not inherit (sbatch exports it).
UNEXPORTED = ("IPP_CLUSTER_TAG", "STY", "WINDOW")


def say(kind, group, text, job=None):
    """One line of the log (`LINE`)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"=== keeper {stamp}: {kind} {group}" + (f" job {job}" if job else "") + f": {text}",
          flush=True)


class Keeper:
    """The keeper of the run directory *run* (see the module)."""

    def __init__(self, run):
        self.folder = os.path.join(run, "slurm")
        self.lock_file = os.path.join(run, "lock")
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.waits = {}  # group -> the longest queue wait seen (s)
        self.said_ended = set()  # ids whose end the log said (a restart may say one again)
        self.submitted = {}  # group -> the monotonic times of its submits (see `STORM`)

    def plan(self):
        """``(cluster name, {group: Policy})`` of the plan file; no group without one."""
        try:
            with open(os.path.join(self.folder, "keeper.json")) as file:
                plan = json.load(file)
        except (OSError, ValueError):
            return "", {}
        return plan["name"], {group: Policy(int(p["jobs"]), p.get("time"), p.get("renew"))
                              for group, p in plan["groups"].items()}

    def records(self, group):
        """``(the id of GROUP.job or None, {id: record path} of the others)``."""
        primary, others = None, {}
        for entry in os.listdir(self.folder):
            stem, _, tail = entry.partition("+")
            if entry == f"{group}.job":
                primary = _read_id(os.path.join(self.folder, entry))
            elif stem == group and tail.endswith(".job") and tail[:-4].isdigit():
                others[tail[:-4]] = os.path.join(self.folder, entry)
        return primary, others

    def squeue(self, job_name):
        """``{id: (state, seconds left or None, queue wait or None)}`` of this user's jobs
        named *job_name*; raises OSError when squeue cannot answer."""
        try:
            said = subprocess.run(["squeue", "-h", "--states=all", "-u", self.user, f"--name={job_name}",
                                   "-o", "%i|%T|%L|%V|%S|%j|%u"], capture_output=True, text=True,
                                  timeout=SQUEUE_WAIT)
        except subprocess.TimeoutExpired:
            raise OSError(f"squeue did not answer in {SQUEUE_WAIT:g} s") from None
        if said.returncode:
            raise OSError(f"squeue cannot answer: {' '.join(said.stderr.split())}")
        jobs = {}
        for line in said.stdout.splitlines():
            fields = line.split("|")
            if len(fields) == 7 and fields[0].isdigit() and fields[5:] == [job_name, self.user]:
                jobs[fields[0]] = (fields[1], seconds(fields[2]), _waited(fields[3], fields[4]))
        return jobs

    def submit(self, name, group, reason):
        """Submit one job of *group* with fab's last script and options; its id, recorded."""
        with open(os.path.join(self.folder, f"{group}.sbatch"), "rb") as file:
            output, *options = file.read().decode().split("\0")[:-1]
        env = {k: v for k, v in os.environ.items() if k not in UNEXPORTED}
        try:
            said = subprocess.run(
                ["sbatch", "--parsable", f"--job-name=ipp-{name}-{group}", f"--output={output}",
                 f"--comment=ipp-cluster {name} {group} of {self.user}@{os.uname().nodename}",
                 *options, os.path.join(self.folder, f"{group}.script")],
                capture_output=True, text=True, env=env, timeout=SBATCH_WAIT)
        except subprocess.TimeoutExpired:
            raise OSError(f"sbatch did not answer in {SBATCH_WAIT:g} s") from None
        job = said.stdout.strip().splitlines()[-1].split(";")[0] if said.stdout.strip() else ""
        if said.returncode or not job.isdigit():
            raise OSError(f"sbatch refused: {' '.join((said.stderr or said.stdout).split())}")
        try:
            _write_id(os.path.join(self.folder, f"{group}+{job}.job"), job)
        except OSError as error:  # a job no record names would outlive cluster.down: end it
            subprocess.run(["scancel", job], capture_output=True, timeout=SBATCH_WAIT)
            raise OSError(f"job {job} cancelled, as its record could not be written: {error}") from None
        self.submitted.setdefault(group, []).append(time.monotonic())
        say("submit", group, reason, job)
        return job

    def storm(self, group, policy):
        """True while *group* submitted its jobs and `STORM` more in the window (`STORM`)."""
        now, window = time.monotonic(), min(STORM_WINDOW, (policy.time or STORM_WINDOW * 2) / 2)
        recent = [t for t in self.submitted.get(group, ()) if now - t < window]
        self.submitted[group] = recent
        return len(recent) >= policy.jobs + STORM

    def keep(self, name, group, policy, once=False, seen=None):
        """One round for *group*: its decision, as a line for the state file; *seen* gets
        ``{id: state}`` of its recorded jobs."""
        primary, others = self.records(group)
        if primary is None:
            return "not kept: no job recorded (fab engines.start or cluster.up submits one)"
        jobs = self.squeue(f"ipp-{name}-{group}")
        known = {job: jobs.get(job, ("GONE", None, None)) for job in [primary, *others]}
        if seen is not None:
            seen.update((job, state) for job, (state, _, _) in known.items() if Job(job, state).active)
        for job, (state, _, waited) in known.items():
            if waited is not None:
                self.waits[group] = max(self.waits.get(group, 0), waited)
            if Job(job, state).active or job in self.said_ended:
                continue
            self.said_ended.add(job)
            say("end", group, f"it ended ({state})" if state != "GONE" else "Slurm no longer knows it", job)
        running = [job for job in others if Job(job, known[job][0]).active]
        if not Job(primary, known[primary][0]).active and running:
            successor = min(running, key=lambda job: (known[job][0] != "RUNNING", int(job)))
            os.replace(others.pop(successor), os.path.join(self.folder, f"{group}.job"))
        for job, path in others.items():
            if not Job(job, known[job][0]).active:
                os.remove(path)
        if policy.renew == 0 and not once:
            return "slurm_renew=no: not renewed"
        wait = self.waits.get(group, 0)
        decision = decide([Job(job, state, left) for job, (state, left, _) in known.items()],
                          policy, wait)
        if decision.submit and self.storm(group, policy):
            raise OSError(f"{len(self.submitted[group])} jobs submitted of late, and they end as soon"
                          " as they start: none more for a while (see their output)")
        for reason in decision.submit:
            job = self.submit(name, group, reason)
            if seen is not None:
                seen[job] = "PENDING"
        return (f"submitted {len(decision.submit)}: " + "; ".join(decision.submit) if decision.submit
                else f"{decision.lasting} of {policy.jobs} jobs lasting; renewal {margin(policy, wait)} s "
                     "before each end")

    def round(self, once=False):
        """Keep every group of the plan once, under the cluster's lock; False without it."""
        name, groups = self.plan()
        with open(self.lock_file, "a") as lock:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.2)
            state, held = {}, time.monotonic()
            for group, policy in groups.items():
                if time.monotonic() - held > HOLD:  # a fab's step waits for the lock: the rest next round
                    break
                seen = {}
                try:
                    said = self.keep(name, group, policy, once, seen)
                except OSError as error:
                    said = f"error: {error}"
                    say("error", group, str(error))
                state[group] = {"at": time.time(), "decision": said, "jobs": seen}
            _write_json(os.path.join(self.folder, "keeper.state"), state)
        return True


def _waited(submitted, started):
    """Seconds between squeue's submit and start times (local ISO times), once it started."""
    try:
        waited = (datetime.fromisoformat(started) - datetime.fromisoformat(submitted)).total_seconds()
    except ValueError:
        return None
    return int(waited) if 0 <= waited and datetime.fromisoformat(started) <= datetime.now() else None


def _read_id(path):
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return None
    return text if text.isdigit() else None


def _write_id(path, job):
    with open(path + ".new", "w") as file:
        file.write(job + "\n")
    os.replace(path + ".new", path)


def _write_json(path, value):
    with open(path + ".new", "w") as file:
        json.dump(value, file)
    os.replace(path + ".new", path)


def main(argv):
    if len(argv) < 2:
        raise SystemExit("usage: python RUN_DIR/ipp_remote master.keeper RUN_DIR [--once]")
    keeper = Keeper(argv[1])
    if "--once" in argv[2:]:
        return 0 if keeper.round(once=True) else 1
    while True:
        keeper.round()
        time.sleep(POLL)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
