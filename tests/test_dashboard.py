"""
Unit tests of the dashboard's own reading (``tasks/remote/ipp_dashboard.py``) of the run
directory; what it asks the hub is tested end to end (``tests/test_e2e_dashboard.py``).
"""

from tasks.remote.ipp_dashboard import Watcher

START = "\n=== Thu Dec  3 07:07:13 UTC 2026: c-controller\n"
RESTART = "=== nanny 2026-12-03 07:09:01: restart: the controller ended (signal 9 (SIGKILL)); starting it again now\n"


def test_the_controller_log_is_read_on_from_where_the_last_read_ended(tmp_path):
    log = tmp_path / "c-controller.log"
    log.write_text(START + "hub line\n" * 1000)
    watcher = Watcher(str(tmp_path), str(tmp_path), "c")
    assert watcher.controller() == {"started": "Thu Dec  3 07:07:13 UTC 2026", "restarts": 0,
                                    "last_restart": None}
    read = watcher.log_at
    with log.open("a") as more:
        more.write(RESTART + RESTART[:20])  # the second line is still being written
    assert watcher.controller()["restarts"] == 1 and watcher.log_at == read + len(RESTART)
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
