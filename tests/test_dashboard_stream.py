"""
Unit tests of what the dashboard keeps and sends: the task stream
(``tasks/remote/dashboard_stream.py``) fed as the engines' IOPub messages feed it, the
history that outlives restarts (``dashboard_history.py``), the hosts' rows
(``dashboard_hosts.py``) and the listener's reading of signed messages. End to end, with
a real cluster and a browser: ``tests/test_e2e_dashboard.py``.
"""

import json

from jupyter_client.session import Session

from tasks.remote import dashboard_hosts as hosts
from tasks.remote import dashboard_stream as stream
from tasks.remote.dashboard_history import History
from tasks.remote.ipp_dashboard import Listener, Watcher

NOW = 1_800_000_000.0
TRACEBACK = ["\x1b[0;31m---------\x1b[0m",
             "File \x1b[0;32m/work/job.py:3\x1b[0m, in \x1b[0;36mload\x1b[0m(path)",
             "\x1b[0;31mKeyError\x1b[0m: 'x'"]


def test_a_task_is_running_from_its_start_for_however_long_it_runs():
    tasks = stream.TaskStream()
    tasks.began(3, "long", NOW, "node1")
    for later in (10, 40, 1200):  # a task of 20 minutes is on the stream all that time
        view = tasks.bars(NOW + later, by_host=False)
        assert view["rows"] == [{"key": 3, "bars": [], "running": [
            [-min(later, stream.WINDOW), "long", float(later)]]}]
    tasks.ended(3, "long", NOW + 1200, "node1")
    view = tasks.bars(NOW + 1201, by_host=False)
    assert view["rows"][0]["running"] == [] and view["rows"][0]["bars"] == [[-300.0, -1.0, 1, 0, 1200.0]]
    assert tasks.bars(NOW + 1200 + stream.WINDOW + 1, by_host=False)["rows"] == []  # out of the window


def test_a_failure_is_kept_with_its_type_place_message_and_plain_traceback():
    tasks = stream.TaskStream()
    tasks.began(0, "bad", NOW, "node1")
    tasks.failed(0, "bad", {"ename": "KeyError", "evalue": "'x'", "traceback": TRACEBACK}, NOW + 1, "node1")
    tasks.ended(0, "bad", NOW + 1, "node1")
    [failure] = tasks.take_failures()
    assert (failure["ename"], failure["evalue"], failure["place"], failure["engine"]) == (
        "KeyError", "'x'", "load", 0)
    assert "\x1b" not in failure["traceback"] and "/work/job.py:3" in failure["traceback"]
    assert tasks.bars(NOW + 2, by_host=False)["rows"][0]["bars"] == [[-2.0, -1.0, 0, 1, 1.0]]
    assert tasks.take_failures() == []


def test_a_lost_idle_ends_a_task_at_the_next_busy_and_a_gone_engine_fails_its_task():
    tasks = stream.TaskStream()
    tasks.began(1, "a", NOW, "node1")
    tasks.began(1, "b", NOW + 2, "node1")  # the idle of "a" never came
    tasks.began(2, "c", NOW, "node2")
    tasks.engines_gone({1: "uuid"}, NOW + 5)  # engine 2 went away
    view = tasks.bars(NOW + 5, by_host=False)
    assert [row["key"] for row in view["rows"]] == [1, 2]
    assert view["rows"][0]["bars"] == [[-5.0, -3.0, 1, 0, 2.0]] and view["rows"][0]["running"][0][1] == "b"
    assert view["rows"][1]["bars"][0][3] == 1 and view["rows"][1]["running"] == []
    assert [f["ename"] for f in tasks.take_failures()] == ["EngineError"]


def test_100000_tasks_in_the_window_make_a_small_payload_with_exact_counts():
    tasks = stream.TaskStream()
    for n in range(100_000):  # 4 engines, 250 s of tasks of 10 ms
        engine, start = n % 4, NOW + n * 0.0025
        tasks.began(engine, f"t{n}", start, f"node{engine // 2}")
        if n % 1000 == 7:
            tasks.failed(engine, f"t{n}", {"ename": "ValueError"}, start + 0.01, f"node{engine // 2}")
        tasks.ended(engine, f"t{n}", start + 0.01, f"node{engine // 2}")
    now = NOW + 251
    for by_host in (False, True):
        view = tasks.bars(now, by_host)
        assert sum(bar[2] + bar[3] for row in view["rows"] for bar in row["bars"]) == 100_000
        assert sum(bar[3] for row in view["rows"] for bar in row["bars"]) == 100
        assert all(len(row["bars"]) <= stream.WINDOW / stream.BIN + 1 for row in view["rows"])
        assert len(json.dumps(view, separators=(",", ":"))) < 60_000
    assert len(tasks.take_failures()) == 100


def test_history_carries_completed_tasks_over_restarts_and_keeps_failures(tmp_path):
    path = str(tmp_path / "dashboard.sqlite")
    history = History(path)
    history.begin("Thu Dec  3 07:07:13 UTC 2026")
    assert history.completed({"a/1/1": ("a", "1", 5), "a/2/1": ("a", "2", 7)}) == 12
    assert history.completed({"a/1/1": ("a", "1", 2), "a/2/1": ("a", "2", 9)}) == 16  # a/1 counted anew
    assert history.completed({"a/2/1": ("a", "2", 9), "a/1/2": ("a", "1", 1)}) == 17  # a/1 restarted
    assert history.restarts() == {("a", "1"): 1, ("a", "2"): 0}
    history.add_failures([{"msg_id": f"m{n}", "time": NOW + n, "engine": n % 2, "host": "a",
                           "ename": "KeyError" if n % 3 else "OSError", "evalue": f"v{n}",
                           "place": "load", "traceback": f"tb {n}"} for n in range(10)])
    again = History(path)  # Jupyter restarted
    again.begin("Thu Dec  3 07:07:13 UTC 2026")
    assert again.completed({}) == 17 and again.failed() == 10
    groups = again.failure_groups()
    assert [(g["ename"], g["count"], g["evalue"], g["msg_id"]) for g in groups] == [
        ("OSError", 4, "v9", "m9"), ("KeyError", 6, "v8", "m8")]
    assert groups[0]["engines"] == [0, 1] and groups[0]["first"] == NOW
    assert again.traceback("m4")["traceback"] == "tb 4" and again.traceback("nope") is None
    again.begin("Fri Dec  4 08:00:00 UTC 2026")  # a new controller: a new history
    assert again.completed({}) == 0 and again.failed() == 0 and again.failure_groups() == []


def test_a_host_row_has_its_sample_and_from_50_engines_a_summary():
    plans = {"node1": {"expected": 2, "threads": 1, "devices": []}}
    sample = {"received": NOW - 30, "host": {"cpu_percent": 50.0, "cores": 4},
              "engines": {"1": {"rss": 100 << 20, "limit": 1 << 30}, "2": {"rss": 300 << 20, "limit": None}}}
    engines = {0: "node1/1/1", 1: "node1/2/1"}
    queues = {"0": {"tasks": 3, "queue": 0, "completed": 4}, "1": {"tasks": 0, "queue": 0, "completed": 9}}
    [row] = hosts.rows(plans, {"node1": sample}, engines, queues, {("node1", "1"): 2}, {0}, NOW, False)
    assert (row["registered"], row["expected"], row["stale"], row["resources"]["cores"]) == (2, 2, True, 4)
    assert [(e["busy"], e["queued"], e["restarts"], e["rss"], e["limit"]) for e in row["engines"]] == [
        (True, 2, 2, 100 << 20, 1 << 30), (False, 0, 0, 300 << 20, None)]
    [row] = hosts.rows(plans, {"node1": sample}, engines, queues, {}, {0}, NOW, True)
    assert row["engines"] == [] and row["summary"]["busy"] == 1 and row["summary"]["completed"] == [4, 6, 9]
    assert row["summary"]["memory"]["counts"][0] == 1 and sum(row["summary"]["memory"]["counts"]) == 2


def signed(session, msg_type, content, parent_type, engine=5, topic="status"):
    parent = session.msg(parent_type, {})
    frames = session.serialize(session.msg(msg_type, content, parent=parent),
                               ident=f"engine.{engine}.{topic}".encode())
    return [f if isinstance(f, bytes) else f.encode() for f in frames], parent["header"]["msg_id"]


def test_the_listener_takes_signed_task_messages_only(tmp_path):
    watcher = Watcher(str(tmp_path), str(tmp_path), "c")
    listener = Listener(watcher)
    listener.session = Session(key=b"the-key", signature_scheme="hmac-sha256")
    forger = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
    busy, msg_id = signed(listener.session, "status", {"execution_state": "busy"}, "apply_request")
    listener.take(signed(forger, "status", {"execution_state": "busy"}, "apply_request", engine=6)[0])
    listener.take(signed(listener.session, "status", {"execution_state": "busy"}, "kernel_info_request",
                         engine=7)[0])
    listener.take(busy)
    assert list(watcher.stream.running) == [5] and watcher.stream.running[5][0] == msg_id
    session, parent = listener.session, {"header": {"msg_id": msg_id, "msg_type": "apply_request"}}
    for msg_type, content, topic in (("error", {"ename": "OSError", "traceback": TRACEBACK}, "error"),
                                     ("status", {"execution_state": "idle"}, "status")):
        frames = session.serialize(session.msg(msg_type, content, parent=parent),
                                   ident=f"engine.5.{topic}".encode())
        listener.take([f if isinstance(f, bytes) else f.encode() for f in frames])
    assert watcher.stream.running == {}
    assert [(f["msg_id"], f["ename"], f["place"]) for f in watcher.stream.take_failures()] == [
        (msg_id, "OSError", "load")]
