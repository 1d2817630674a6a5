"""
Unit tests of an engine host's steps between start and stop: one engine renewed alone,
and the give-up markers of the engines' supervisor (named within the plan, removed when
engines start or stop). Run here by a local ``/bin/sh -s`` as a host runs them (the
``host`` fixture of `tests.test_commands`). No SSH, no root.
"""

import dataclasses
import os
import signal

from tasks import commands
from tasks.commands.answers import parse_supervisor
from tests.test_commands import calls, facts, host, needs_screen, node, session_of  # noqa: F401 (host: a fixture)
from tests.waiting import wait_until


@needs_screen
def test_one_engine_is_renewed_alone_and_the_others_keep_running(host):
    host(commands.write_engine_file("{}"))
    facts(host(commands.start_engines(host.settings, node("node02", engines=2))))
    first = {session_of(args).split("/")[1]: session_of(args) for args in calls(host.home, "ipengine", 2)}
    assert facts(host(commands.renew_engines([2, 5])))["renewed"].split() == ["2"]  # 5 runs nowhere
    again = [session_of(args) for args in calls(host.home, "ipengine", 3)]
    assert first["1"] in again and first["2"] in again  # the old starts' files remain
    [new] = set(again) - set(first.values())
    assert new.startswith("node02/2/")  # a new start of engine 2, not of 1
    state = parse_supervisor(facts(host(commands.host_status(node("n", engines=2)))))
    assert {n: (e["state"], e["starts"]) for n, e in state["engines"].items()} == {
        "1": ("running", 1), "2": ("running", 2)}


def _gave_up(host, *numbers):
    """Write the marker of each engine *numbers* the supervisor gave up on, as it writes it."""
    run_dir = host.home / ".ipp-cluster" / host.settings.cluster_name / os.uname().nodename
    run_dir.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (run_dir / f"{host.settings.cluster_name}-engine-{n}.gaveup").write_text(
            f"gave up: engine {n} ended 6 times in 5 min, the last time: exit code 3\n")
    return run_dir


def test_the_status_names_only_the_engines_within_the_plan_that_gave_up(host):
    """Engine 4 gave up, then engines=4 became 2: its marker says nothing of the host now."""
    _gave_up(host, 2, 4)
    status = facts(host(commands.host_status(node("n", engines=2))))
    assert [key for key in status if key.startswith("gaveup_")] == ["gaveup_2"]
    assert status["gaveup_2"] == "gave up: engine 2 ended 6 times in 5 min, the last time: exit code 3"


@needs_screen
def test_every_start_removes_every_marker_of_the_engines_planned_or_not(host):
    host(commands.write_engine_file("{}"))
    run_dir = _gave_up(host, 3, 4, 12)
    started = facts(host(commands.start_engines(host.settings, node("n", engines=3))))
    assert started["started"] == "3" and list(run_dir.glob("*.gaveup")) == []  # a new supervisor
    _gave_up(host, 2, 5)  # 2 given up by the supervisor that runs, 5 left from a larger plan
    started = facts(host(commands.start_engines(host.settings, node("n", engines=3))))
    assert started["started"] == "0" and list(run_dir.glob("*.gaveup")) == []  # the same one, asked


@needs_screen
def test_a_start_asks_the_supervisor_that_runs_for_the_engines_it_stopped_and_counts_them(host):
    """The shell reads the supervisor's state (which engines stopped) as the supervisor
    writes it for the shell."""
    settings = dataclasses.replace(host.settings, engine_restart=False)
    host(commands.write_engine_file("{}"))
    facts(host(commands.start_engines(settings, node("n", engines=3))))
    calls(host.home, "ipengine", 3)
    [second] = [int(path.name.split(".")[1]) for path in host.home.glob("ipengine.*.args")  # its pid
                if session_of(path.read_text().splitlines()).split("/")[1] == "2"]
    os.kill(second, signal.SIGTERM)

    def states():
        supervisor = parse_supervisor(facts(host(commands.host_status(node("n", engines=3)))))
        return {n: e["state"] for n, e in (supervisor or {}).get("engines", {}).items()}
    wait_until(lambda: states() == {"1": "running", "2": "stopped", "3": "running"}, 30,
               "engine 2 stopped (ENGINE_RESTART=no)")
    started = facts(host(commands.start_engines(settings, node("n", engines=3))))
    assert started["started"] == "1"  # the same supervisor, asked to start engine 2 again
    wait_until(lambda: states() == {"1": "running", "2": "running", "3": "running"}, 30,
               "engine 2 started again")


def test_stopping_the_engines_removes_every_engine_marker_of_the_cluster(host):
    run_dir = _gave_up(host, 1, 4)
    (run_dir / f"{host.settings.cluster_name}-controller.gaveup").write_text("gave up: ...\n")
    assert facts(host(commands.stop_engines()))["left_engine"] == "0"
    assert sorted(path.name for path in run_dir.glob("*.gaveup")) == [
        f"{host.settings.cluster_name}-controller.gaveup"]  # the master's, not the engines'
