"""
What the keeper (``keeper.py``) decides for one allocation, from what Slurm says of its
recorded jobs: pure, so that the same jobs give the same decision before and after a
restart of the keeper (no memory of its own counts).

A job *ends* when its time left is within the renew margin (`margin`): its successor is
then submitted, with the same script, so that the successor's queue wait and its engines'
start are hidden before the job's engines stop (``MARGIN`` in ``tasks/commands/slurm.py``,
`stop_margin` here). The group holds ``jobs`` jobs that do not end (pending or running); the
jobs that end each add the one successor that overlaps them, and never more: after the
decision, at most ``jobs`` + (jobs that end) are queued or run.
"""

from dataclasses import dataclass

#: Job states that hold nodes, or may (``ACTIVE`` in ``tasks/commands/slurm.py``, the same).
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT")
#: Seconds from a job's start to its engines registered, on a busy node (the job script's
#: step, the supervisor, the engines' kernels): the successor must be this far ahead.
START = 60


@dataclass(frozen=True)
class Job:
    """A recorded job as squeue says it: its *left* seconds while it runs (None: unknown)."""

    id: str
    state: str
    left: int = None

    @property
    def active(self):
        return self.state in ACTIVE


@dataclass(frozen=True)
class Policy:
    """An allocation's keeping: *jobs* at once, *time* (its slurm_time, s; None: the
    partition's), *renew* (s before the end; None: `margin` sizes it; 0: no renewal)."""

    jobs: int = 1
    time: int = None
    renew: int = None


def stop_margin(time):
    """Seconds before its end at which a job's engines stop (the job script's clock: 120 s,
    at most a quarter of the job's time)."""
    return 120 if time is None else min(120, time // 4)


def margin(policy, wait):
    """Seconds before a job's end at which its successor is submitted: ``slurm_renew``'s, or
    the engines' stop margin, the queue's wait measured so far (*wait* s) and `START`; never
    over half the job's time, so that a successor that just started does not end at once."""
    if policy.renew is not None:
        return policy.renew
    wanted = stop_margin(policy.time) + max(0, wait) + START
    return wanted if policy.time is None else min(wanted, policy.time // 2)


@dataclass(frozen=True)
class Decision:
    """What to do now: submit one job for each of *submit*'s reasons."""

    submit: tuple = ()
    ending: tuple = ()  # ids of the running jobs within the margin
    lasting: int = 0  # jobs queued or running that do not end


def decide(jobs, policy, wait=0):
    """The `Decision` for the allocation's recorded *jobs* (`Job`), its *policy* and the
    queue's *wait* (s): top its jobs that do not end up to ``policy.jobs``, naming for
    each submit the ending job it succeeds (those that end last: the earlier ones' successors
    are the jobs that end later) or the count it restores."""
    active = [job for job in jobs if job.active]
    limit = margin(policy, wait)
    # the latest to end first: an earlier one's successor is among the jobs already
    ending = sorted((job for job in active if policy.renew != 0 and job.state == "RUNNING"
                     and job.left is not None and job.left <= limit), key=lambda job: -job.left)
    lasting = len(active) - len(ending)
    reasons = []
    for index in range(max(0, policy.jobs - lasting)):
        if index < len(ending):
            job = ending[index]
            reasons.append(f"successor of job {job.id}, which ends in {job.left} s "
                           f"(renewed {limit} s before its end)")
        else:
            reasons.append(f"{lasting + index} of {policy.jobs} jobs queued or running")
    return Decision(tuple(reasons), tuple(job.id for job in ending), lasting)


def seconds(text):
    """squeue's time left (``MM:SS``, ``HH:MM:SS``, ``D-HH:MM:SS``) in seconds; None for
    another text (``UNLIMITED``, ``INVALID``, ``NOT_SET``)."""
    days, dash, rest = text.partition("-")
    if not dash:
        days, rest = "0", text
    parts = rest.split(":")
    if not days.isdigit() or not all(part.isdigit() for part in parts) or len(parts) > 3:
        return None
    parts = [int(part) for part in parts]
    if dash:
        hours, minutes, secs = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, secs = parts
    else:
        hours, minutes, secs = 0, parts[0], (parts + [0])[1]
    return int(days) * 86400 + hours * 3600 + minutes * 60 + secs
