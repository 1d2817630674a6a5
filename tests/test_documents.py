"""
Unit tests of the JSON documents of ``--json`` (``tasks/show/documents.py``): the same
facts as the tables, as JSON values, and the status tasks' exit codes unchanged.
"""

import json

import pytest
from invoke.exceptions import Exit

from tasks.inventory.folder import Host
from tasks.show import documents, report
from tasks.ssh.fleet import FAILED, OK, UNREACHABLE, HostResult

ROWS = [
    {"host": "node01", "roles": ["master"], "state": "ok", "sessions": ["ipp-controller", "ipp-jupyter"],
     "registered": None, "expected": None, "threads": None, "restarts": None, "problems": [],
     "notes": ["controller restarted 1 time, the last at 2026-11-29 20:31:05"],
     "controller_restarts": 1, "controller_last_restart": "2026-11-29 20:31:05",
     "jupyter_restarts": 0, "jupyter_last_restart": None},
    {"host": "node02", "roles": ["engines"], "state": "ok", "sessions": ["ipp-engines"],
     "registered": 1, "expected": 2, "threads": "2", "restarts": 3,
     "problems": ["1 of 2 engines running"], "notes": []},
    {"host": "node03", "roles": ["engines"], "state": "unreachable", "sessions": [],
     "registered": None, "expected": None, "threads": None, "restarts": None,
     "problems": ["unreachable: timed out"], "notes": []},
]


def test_a_status_document_has_each_rows_facts_as_json_values():
    document = documents.status("cluster.status", "ipp", ROWS, stopped=False)
    assert (document["command"], document["cluster"], document["ok"], document["stopped"]) == (
        "cluster.status", "ipp", False, False)
    master, engines, down = document["hosts"]
    assert master["controller_restarts"] == 1 and master["notes"] == ROWS[0]["notes"]
    assert master["reachable"] and not down["reachable"]
    assert (engines["registered"], engines["expected"], engines["threads"], engines["restarts"]) == (
        1, 2, 2, 3)
    assert "controller_restarts" not in engines
    json.dumps(document)  # every value is JSON


def test_status_json_prints_the_document_alone_and_exits_as_the_table_does(capsys):
    with pytest.raises(Exit) as failed:
        report.status_and_exit("cluster", ROWS, as_json=("cluster.status", "ipp"))
    assert failed.value.code == 1
    assert failed.value.message == ("error: node02: 1 of 2 engines running\n"
                                    "error: node03: unreachable: timed out")
    document = json.loads(capsys.readouterr().out)  # all of stdout: the document
    assert [host["host"] for host in document["hosts"]] == ["node01", "node02", "node03"]


def test_a_stopped_cluster_is_said_in_the_document_and_by_exit_3(capsys):
    stopped = [dict(ROWS[1], sessions=[], problems=["0 of 2 engines running"])]
    with pytest.raises(Exit) as failed:
        report.status_and_exit("engines", stopped, stopped="the engines are stopped",
                               as_json=("engines.status", "ipp"))
    assert (failed.value.code, failed.value.message) == (3, "the engines are stopped")
    assert json.loads(capsys.readouterr().out)["stopped"] is True


def test_info_and_check_documents_carry_the_facts_of_their_tables():
    facts = {"cores": "8", "gpus": "4 x NVIDIA H200", "mem_total_kb": "16384000",
             "mem_available_kb": "8000000", "load": "0.50 0.25 0.10", "users": "alice bob ",
             "python": "3.11.7", "ipyparallel": "9.2.0"}
    results = {"node01": HostResult(Host("node01", "node01"), OK, facts=facts),
               "node02": HostResult(Host("node02", "node02"), FAILED, reason="exit 1: no screen"),
               "node03": HostResult(Host("node03", "node03"), UNREACHABLE, reason="unreachable: x")}
    info = documents.info(results)
    assert not info["ok"]
    assert info["hosts"][0] == {"host": "node01", "state": "ok", "reason": None, "cores": 8,
                                "gpus": "4 x NVIDIA H200", "memory_total_kb": 16384000,
                                "memory_available_kb": 8000000, "load": [0.5, 0.25, 0.1],
                                "users": ["alice", "bob"], "python": "3.11.7", "ipyparallel": "9.2.0"}
    assert info["hosts"][2]["reason"] == "unreachable: x" and info["hosts"][2]["cores"] is None
    check = documents.check(results, {"node01": ["screen is missing"], "node02": ["exit 1: no screen"]})
    assert [(h["state"], h["ready"]) for h in check["hosts"]] == [
        ("not ready", False), ("failed", False), ("unreachable", False)]
    assert check["hosts"][0]["problems"] == ["screen is missing"] and not check["ok"]


def test_a_stopped_cluster_says_how_its_slurm_jobs_ended(capsys):
    rows = [dict(ROWS[0], sessions=[], notes=[]),
            {"host": "cpu_alloc", "roles": ["allocation"], "state": "ok", "sessions": [],
             "registered": 0, "expected": 0, "threads": None, "restarts": None, "notes": [],
             "job": {"id": "7", "state": "CANCELLED", "active": False},
             "problems": ["job 7 ended (CANCELLED): it was cancelled outside this cluster's commands"]}]
    with pytest.raises(Exit) as failed:
        report.status_and_exit("cluster", rows, stopped="the cluster 'ipp' is stopped")
    assert (failed.value.code, failed.value.message) == (3, "the cluster 'ipp' is stopped\ncpu_alloc: job 7 "
                                                         "ended (CANCELLED): it was cancelled outside this "
                                                         "cluster's commands")
