"""Unit tests of what tasks show: the tables, the error lines and the exit codes."""

import json

import pytest
from invoke.exceptions import Exit

from tasks.inventory.folder import Host
from tasks.show import report
from tasks.ssh.fleet import FAILED, OK, UNREACHABLE, HostResult
from tasks.steps.lifecycle import EnginesUp


def results():
    return {
        "node01": HostResult(Host("node01", "node01"), OK, facts={"left_engine": "0"}),
        "node02": HostResult(Host("node02", "node02"), FAILED, reason="exit 1: no screen"),
        "node03": HostResult(Host("node03", "node03"), UNREACHABLE, reason="unreachable: timed out"),
    }


def test_a_results_table_has_a_row_per_host_with_its_state_facts_and_reason(capsys):
    report.results_table("engines stopped", results(), [("engines left", "left_engine")])
    rows = [line for line in capsys.readouterr().out.splitlines() if "node0" in line]
    cells = [[cell.strip() for cell in row.split("│")[1:-1]] for row in rows]
    assert cells == [["node01", "ok", "0", ""], ["node02", "failed", "", "exit 1: no screen"],
                     ["node03", "unreachable", "", "unreachable: timed out"]]


def test_failures_name_each_host_and_exit_1_only_when_something_failed():
    lines = report.failures(results())
    assert lines == ["node02: exit 1: no screen", "node03: unreachable: timed out"]
    assert report.fail_if([]) is None
    with pytest.raises(Exit) as stop:
        report.fail_if(lines)
    assert stop.value.code == 1
    assert stop.value.message == ("error: node02: exit 1: no screen\n"
                                  "error: node03: unreachable: timed out")


def test_status_rows_exit_non_zero_naming_every_host_with_problems(capsys):
    rows = [{"host": "m", "roles": ["master"], "state": OK, "sessions": ["a", "b"],
             "registered": None, "expected": None, "problems": []},
            {"host": "n1", "roles": ["engines"], "state": OK, "sessions": ["c"],
             "registered": 1, "expected": 2, "problems": ["1 of 2 engines registered"]},
            {"host": "n2", "roles": ["engines"], "state": UNREACHABLE, "sessions": [],
             "registered": None, "expected": None, "problems": ["unreachable: refused"]}]
    with pytest.raises(Exit) as stop:
        report.status_and_exit("cluster", rows)
    assert stop.value.message == ("error: n1: 1 of 2 engines registered\n"
                                  "error: n2: unreachable: refused")
    out = capsys.readouterr().out
    assert "1/2" in out and out.count(" no ") == 1  # n2 is the one host not reachable


def _cells(out, first):
    line = next(line for line in out.splitlines() if line.startswith(f"│ {first} "))
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_the_engines_table_has_a_row_for_every_host_and_totals_what_registered(capsys):
    up = EnginesUp({"n1": HostResult("n1", OK, facts={"threads": "4"}), "n2": HostResult("n2", OK),
                    "n3": HostResult("n3", UNREACHABLE, reason="unreachable: refused")},
                   expected={"n1": 2, "n2": 2}, registered={"n1": 2, "n2": 1},
                   skipped={"n4": ("skipped", "screen is not installed")})
    report.engines_table(up, ["n4", "n3", "n2", "n1"])
    out = capsys.readouterr().out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│ ")]
    assert rows == ["n4", "n3", "n2", "n1", "total"]  # the inventory's order, every host
    assert _cells(out, "n4") == ["n4", "", "", "", "skipped", "screen is not installed"]
    assert _cells(out, "n3") == ["n3", "", "", "", "unreachable", "unreachable: refused"]
    assert _cells(out, "n2") == ["n2", "1", "2", "", "FAILED", "not all registered"]
    assert _cells(out, "n1") == ["n1", "2", "2", "4", "ok", ""]
    assert _cells(out, "total") == ["total", "3", "4", "", "FAILED", "1 of 4 hosts as expected"]


def test_a_stopped_cluster_is_one_line_and_exit_3(capsys):
    rows = [{"host": "m", "roles": ["master"], "state": OK, "sessions": [], "registered": None,
             "expected": None, "problems": ["controller not running", "jupyter not running"]},
            {"host": "n1", "roles": ["engines"], "state": OK, "sessions": [], "registered": 0,
             "expected": 2, "problems": ["0 of 2 engines running"]}]
    with pytest.raises(Exit) as stop:
        report.status_and_exit("cluster", rows, stopped="the cluster is stopped")
    assert (stop.value.message, stop.value.code) == ("the cluster is stopped", 3)
    assert capsys.readouterr().out == ""
    rows[1]["state"] = UNREACHABLE  # a host that did not answer may run something
    with pytest.raises(Exit) as stop:
        report.status_and_exit("cluster", rows, stopped="the cluster is stopped")
    assert stop.value.code == 1


def test_one_url_for_jupyter():
    assert report.jupyter_url(8889, "abc") == "http://127.0.0.1:8889/?token=abc"


def test_engines_started_again_as_orphans_are_named_in_the_engines_table():
    assert report._renewed([9, 7]) == (
        "engines 7, 9 started again: the controller had dropped the registration")
    assert report._renewed([3]) == "engine 3 started again: the controller had dropped the registration"
    assert report._renewed(range(20, 0, -1)) == ("engines 1, 2, 3, 4, 5 and 15 more started again:"
                                                 " the controller had dropped the registration")


def test_status_names_an_engine_that_runs_but_is_not_registered():
    from tasks.steps.status import _status_row
    state = {"engines": {str(n): {"pid": 100 + n, "state": "running", "starts": 1, "rss": 0,
                                  "limit": None} for n in (1, 2, 3)}}
    result = HostResult("n1", OK, facts={"sessions": "c-engines", "expected": "3",
                                         "supervisor": json.dumps(state)})
    probe = {"controller": True, "engines": {"n1": 1}, "orphans": ["n1/2/5", "n1/4/5", "n2/1/5"],
             "error": "", "jupyter": True, "jupyter_problem": ""}
    row = _status_row("c", Host("n1", "n1"), result, probe, False, True)
    assert row["problems"] == [
        "engine 2 runs but is not registered (the controller dropped its registration;"
        " fab engines.start starts it again)",
        "1 of 3 engines registered"]  # engine 3 is not an orphan: it is still missing
