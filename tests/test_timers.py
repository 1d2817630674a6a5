"""
Unit tests of the supervisor's one timer loop (``tasks/remote/engines/timers.py``): each job at
the first look, then once its period passed, in the order given. No process.
"""

from tasks.remote.engines.timers import Timers


def test_each_job_runs_at_the_first_look_then_once_its_period_passed_in_order():
    ran = []
    timers = Timers()
    timers.every(0, lambda: ran.append("tick"))
    timers.every(5.0, lambda: ran.append("sample"))
    timers.every(0.5, lambda: ran.append("watch"))
    for now in (100.0, 100.25, 100.5, 104.9, 105.0):
        timers.run(now)
        ran.append("|")
    assert " ".join(ran).split(" | ") == [
        "tick sample watch", "tick", "tick watch", "tick watch", "tick sample |"]  # watch: 0.1 s ago
