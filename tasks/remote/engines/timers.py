"""
The one timer loop of the engines' supervisor (``supervisor.py``): its periodic jobs (read
the requests, scan for orphans, watch the engines' memory, sample the host, end what is
due, keep the host report running), each with its period, run by `Timers.run` at each turn
of its loop. One small scheduler instead of a clock of its own in every job.
"""


class Timers:
    """Jobs that run every so many seconds, checked at each `run` (so never more often
    than the loop turns): a job runs at the first `run`, then once its period passed since
    it last ran (period 0: at every `run`). Jobs due together run in the order given."""

    def __init__(self):
        self.jobs = []  # [period, job, monotonic time it last ran or None]

    def every(self, period, job):
        """Run ``job()`` every *period* s."""
        self.jobs.append([period, job, None])

    def run(self, now):
        """Run the jobs due at *now* (monotonic time)."""
        for entry in self.jobs:
            period, job, last = entry
            if last is None or now - last >= period:
                job()
                entry[2] = now
