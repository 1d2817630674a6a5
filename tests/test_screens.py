"""
Unit tests of what the probe and the dashboard read of a session's screen log
(``tasks/remote/shared/screen_logs.py``), and that ``lib.sh`` and ``host_status.sh`` read the same
lines with the same patterns.
"""

import re
import subprocess
from pathlib import Path


from tasks.remote.shared import nanny
from tasks.remote.shared import screen_logs as screens


CONTROLLER_LOG = """
=== Sun Nov 29 10:00:00 UTC 2026: c-controller
2026-11-29 10:00:40.100 [IPController] WARNING | registration::purging stalled registration 3:nodeA/1/100
=== Sun Nov 29 11:00:00 UTC 2026: c-controller
2026-11-29 11:00:01.200 [IPController] registration::accepting registration 0:nodeA/1/200
2026-11-29 11:00:31.300 [IPController] WARNING | registration::purging stalled registration 0:nodeA/1/200
2026-11-29 11:00:31.400 [IPController] WARNING | registration::purging stalled registration 1:nodeA/2/200
2026-11-29 11:00:31.500 [IPController] WARNING | registration::purging stalled registration 2:nodeB/1/200
"""


def test_purged_registrations_are_read_since_the_controllers_last_start(tmp_path):
    log = tmp_path / "c-controller.log"
    log.write_text(CONTROLLER_LOG)
    assert screens.SessionLog(log).read().purged == ["nodeA/1/200", "nodeA/2/200", "nodeB/1/200"]
    assert screens.SessionLog(tmp_path / "none.log").read().purged == []


NANNY_RESTARTED_LOG = """
=== Sun Nov 29 11:00:00 UTC 2026: t-controller
2026-11-29 11:00:01.200 [IPController] registration::accepting registration 0:nodeA/1/200
2026-11-29 11:00:31.400 [IPController] WARNING | registration::purging stalled registration 1:nodeC/1/5
=== nanny 2026-11-29 11:05:00: restart: the controller ended (signal 9 (SIGKILL)); starting it again now
2026-11-29 11:05:02.000 [IPController] Hub listening on tcp://127.0.0.1:5555 for registration.
"""


def test_a_session_log_is_read_on_from_where_the_last_read_ended(tmp_path):
    path = tmp_path / "t-controller.log"
    path.write_text(NANNY_RESTARTED_LOG)
    log = screens.SessionLog(path).read()
    assert (log.started, log.restarts, log.last_restart, log.purged) == (
        "Sun Nov 29 11:00:00 UTC 2026", 1, "2026-11-29 11:05:00", ["nodeC/1/5"])
    read = log.at
    assert read == len(NANNY_RESTARTED_LOG)
    purge = ("2026-11-29 11:06:00.100 [IPController] WARNING | registration::purging stalled registration"
             " 4:nodeA/1/200\r\n")
    with path.open("a") as more:
        more.write(purge + purge[:60])  # the second line is still being written
    assert log.read().purged == ["nodeC/1/5", "nodeA/1/200"] and log.at == read + len(purge)
    with path.open("a") as more:
        more.write(purge[60:] + "\n=== Sun Nov 29 12:00:00 UTC 2026: t-controller\n")  # a new start
    assert (log.read().started, log.restarts, log.purged) == ("Sun Nov 29 12:00:00 UTC 2026", 0, [])
    path.write_text(NANNY_RESTARTED_LOG[:-1])  # shorter: another log, read whole
    assert (log.read().started, log.restarts, log.purged) == ("Sun Nov 29 11:00:00 UTC 2026", 1, ["nodeC/1/5"])
    path.unlink()
    assert log.read().purged == ["nodeC/1/5"]  # a log that cannot be read changes nothing


def shell(code, *args):
    """The output of *code* run by ``/bin/sh`` after ``lib.sh`` and ``host_status.sh``, with *args*."""
    steps = Path(screens.__file__).parent.parent / "steps"
    done = subprocess.run(["/bin/sh", "-c", f". {steps}/lib.sh && . {steps}/engines/host_status.sh && {code}",
                           "sh", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_lines_of_launch_and_of_the_nanny_are_found_alike_by_the_shell_and_python(tmp_path, capsys):
    """One format, three readers: the probe, the dashboard (both `screens.SessionLog`) and
    ``host_status.sh``, with the same patterns."""
    assert shell('printf "%s|%s" "$LAUNCH_HEADER" "$NANNY_RESTART"') == f"{screens.HEADER}|{screens.RESTART}"
    header = shell("launch_header t-controller")
    assert header.startswith("\n=== ") and header.endswith(": t-controller\n")
    nanny.note("restart: the controller ended (exit code 1); starting it again in 1 s")
    said = capsys.readouterr().out
    assert re.fullmatch(r"=== nanny [0-9-]+ [0-9:]+: restart: the controller ended \(exit code 1\);"
                        r" starting it again in 1 s\n", said)
    restart = ("=== nanny 2026-12-03 07:09:01: restart: the controller ended (signal 9 (SIGKILL));"
               " starting it again now")
    gave_up = "=== nanny 2026-12-03 07:09:09: gave up: the controller ended 6 times in 5 min"
    path = tmp_path / "t-controller.log"
    path.write_text(header + restart + "\r\n" + header.replace("t-controller", "t-jupyter") + header
                    + "hub line\r\n" + said.replace("\n", "\r\n") + restart + "\r\n" + gave_up + "\r\n")
    log = screens.SessionLog(path).read()
    assert (log.restarts, log.last_restart) == (2, "2026-12-03 07:09:01")
    assert log.started == header.strip()[len("=== "):-len(": t-controller")]
    assert shell('restarts "$1"', str(path)) == f"{log.restarts}\t{log.last_restart}\n"
