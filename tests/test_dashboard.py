"""
Unit tests of the dashboard's own reading (``tasks/remote/jupyter/dashboard/extension.py``) of the run
directory; what it asks the hub is tested end to end (``tests/test_e2e_dashboard.py``).
"""

import json
import os
import subprocess

from tasks.inventory.folder import Settings
from tasks import commands
from tasks.remote.jupyter.dashboard.extension import Watcher

START = "\n=== Thu Dec  3 07:07:13 UTC 2026: c-controller\n"
RESTART = "=== nanny 2026-12-03 07:09:01: restart: the controller ended (signal 9 (SIGKILL)); starting it again now\n"


def test_the_controller_log_is_read_on_from_where_the_last_read_ended(tmp_path):
    log = tmp_path / "c-controller.log"
    log.write_text(START + "hub line\n" * 1000)
    watcher = Watcher(str(tmp_path), str(tmp_path), "c")
    assert watcher.controller() == {"started": "Thu Dec  3 07:07:13 UTC 2026", "restarts": 0,
                                    "last_restart": None}
    read = watcher.log.at
    with log.open("a") as more:
        more.write(RESTART + RESTART[:20])  # the second line is still being written
    assert watcher.controller()["restarts"] == 1 and watcher.log.at == read + len(RESTART)
    with log.open("a") as more:
        more.write(RESTART[20:])
    assert watcher.controller() == {"started": "Thu Dec  3 07:07:13 UTC 2026", "restarts": 2,
                                    "last_restart": "2026-12-03 07:09:01"}
    with log.open("a") as more:  # a new session of the controller: its restarts count anew
        more.write(START.replace("07:07:13", "08:00:00"))
    assert watcher.controller()["restarts"] == 0


def test_a_log_begun_anew_is_read_whole_and_a_missing_one_changes_nothing(tmp_path):
    log = tmp_path / "c-controller.log"
    log.write_text(START + RESTART + "hub line\n" * 100)
    watcher = Watcher(str(tmp_path), str(tmp_path), "c")
    assert watcher.controller()["restarts"] == 1
    log.write_text(START.replace("07:07:13", "09:00:00"))  # shorter: another file
    assert watcher.controller()["started"] == "Thu Dec  3 09:00:00 UTC 2026"
    log.unlink()
    assert watcher.controller()["started"] == "Thu Dec  3 09:00:00 UTC 2026"


def test_plans_being_written_or_removed_are_skipped(tmp_path):
    """write_plan.sh replaces a plan while the page reads every 2 s, stop_master.sh removes
    the folder: the state leaves out what cannot be read instead of failing (a 500)."""
    plans = tmp_path / "dashboard"
    plans.mkdir()
    (plans / "a.json").write_text('{"expected": 2, "threads": 1, "devices": []}\n')
    (plans / "b.json").write_text('{"expected": 2, "thr')  # half written
    (plans / "c.json").symlink_to(plans / "gone.json")  # listed, then removed before it was opened
    watcher = Watcher(str(tmp_path / "no-profile"), str(tmp_path), "c")
    state = watcher.state()
    assert state["error"].startswith("the controller does not answer")
    assert [(row["host"], row["expected"]) for row in state["hosts"]] == [("a", 2)]
    for plan in plans.iterdir():
        plan.unlink()
    plans.rmdir()
    assert watcher.read()["hosts"] == []


def test_a_plan_is_replaced_whole_so_a_reader_never_sees_half_of_one(tmp_path):
    """write_plan.sh, run by ``/bin/sh -s`` as a host runs it: a new plan goes in under a
    new name, then takes the plan's, so that one opened before still reads whole."""
    settings = Settings(cluster_name="c")
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"]}

    def write_plan(expected):
        step = commands.write_plan("node1", {"expected": str(expected), "threads": "1", "devices": ""})
        done = subprocess.run(commands.REMOTE_SHELL, shell=True, input=commands.script(settings, step),
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr

    plans = tmp_path / ".ipp-cluster" / "c" / os.uname().nodename / "dashboard"
    write_plan(2)
    with (plans / "node1.json").open() as opened:
        write_plan(3)
        assert json.loads(opened.read())["expected"] == 2
    assert json.loads((plans / "node1.json").read_text())["expected"] == 3
    assert [path.name for path in plans.iterdir()] == ["node1.json"]  # nothing left beside it
