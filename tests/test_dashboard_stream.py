"""
Unit tests of what the dashboard keeps and sends: the task stream
(``tasks/remote/jupyter/dashboard/stream.py``) fed as the engines' IOPub messages feed it, the
history that outlives restarts (``dashboard/history.py``), the hosts' rows
(``dashboard/hosts.py``) and the listener's reading of signed messages. End to end, with
a real cluster and a browser: ``tests/test_e2e_dashboard.py``.
"""

import json
import time

import pytest
from jupyter_client.session import Session

from tasks.remote.jupyter.dashboard import hosts
from tasks.remote.jupyter.dashboard import stream
from tasks.remote.jupyter.dashboard.history import History
from tasks.remote.jupyter.dashboard.listener import Listener
from tasks.remote.jupyter.dashboard.extension import Watcher

NOW = 1_800_000_000.0
TRACEBACK = ["\x1b[0;31m---------\x1b[0m",
             "File \x1b[0;32m/work/job.py:3\x1b[0m, in \x1b[0;36mload\x1b[0m(path)",
             "\x1b[0;31mKeyError\x1b[0m: 'x'"]


def fed():
    """A stream that knows engines 0-3, two on each of node0 and node1."""
    tasks = stream.TaskStream()
    tasks.place({n: f"node{n // 2}" for n in range(4)})
    return tasks


def test_a_task_is_running_from_its_start_for_however_long_it_runs():
    tasks = fed()
    tasks.began(3, "long", NOW)
    for later in (10, 40, 1200):  # a task of 20 minutes is on the stream all that time
        view = tasks.bars(NOW + later, by_host=False)
        assert view["rows"] == [{"key": 3, "bars": [], "running": [
            [-min(later, stream.WINDOW), "long", float(later)]]}]
        tasks.settle({3: 1}, NOW + later)  # the hub says it has a task in flight
    tasks.ended(3, "long", NOW + 1200)
    view = tasks.bars(NOW + 1201, by_host=False)
    assert view["rows"][0]["running"] == [] and view["rows"][0]["bars"] == [[-300.0, -1.0, 1, 0, 1200.0]]
    assert tasks.bars(NOW + 1200 + stream.WINDOW + 1, by_host=False)["rows"] == []  # out of the window


def test_a_task_s_length_is_its_engine_s_measure_and_its_end_this_machine_s_time():
    tasks = fed()
    tasks.began(0, "t", NOW, stamp=NOW + 3600)  # an engine whose clock is an hour ahead
    tasks.ended(0, "t", NOW + 2.0, stamp=NOW + 3600 + 0.5)  # taken late, in a batch
    assert tasks.bars(NOW + 2, by_host=False)["rows"][0]["bars"] == [[-0.5, 0.0, 1, 0, 0.5]]


def test_a_failure_is_kept_with_its_type_place_message_and_plain_traceback():
    tasks = fed()
    tasks.began(0, "bad", NOW)
    tasks.failed(0, "bad", {"ename": "KeyError", "evalue": "'x'", "traceback": TRACEBACK}, NOW + 1)
    tasks.ended(0, "bad", NOW + 1)
    [failure] = tasks.take_failures()
    assert (failure["ename"], failure["evalue"], failure["place"], failure["engine"], failure["host"]) == (
        "KeyError", "'x'", "load", 0, "node0")
    assert "\x1b" not in failure["traceback"] and "/work/job.py:3" in failure["traceback"]
    assert tasks.bars(NOW + 2, by_host=False)["rows"][0]["bars"] == [[-2.0, -1.0, 0, 1, 1.0]]
    assert tasks.take_failures() == []


def test_lost_idles_end_tasks_and_a_gone_engine_fails_its_task():
    tasks = fed()
    tasks.began(1, "a", NOW)
    tasks.began(1, "b", NOW + 2)  # the idle of "a" never came
    tasks.began(2, "c", NOW)
    tasks.began(3, "d", NOW)
    tasks.settle({1: 1, 3: 0}, NOW + 5)  # engine 2 went away; 3 has no task, by the hub
    assert "d" in [entry[0] for entry in tasks.running.values()]  # one read may be early
    tasks.settle({1: 1, 3: 0}, NOW + 6)  # twice: its idle was lost
    tasks.ended(3, "d", NOW + 6.5)  # ... or late: not counted twice
    view = tasks.bars(NOW + 7, by_host=False)
    assert [row["key"] for row in view["rows"]] == [1, 2, 3]
    assert view["rows"][0]["bars"] == [[-7.0, -5.0, 1, 0, 2.0]] and view["rows"][0]["running"][0][1] == "b"
    assert view["rows"][1]["bars"][0][3] == 1 and view["rows"][1]["running"] == []
    assert [bar[2] for bar in view["rows"][2]["bars"]] == [1] and view["rows"][2]["running"] == []
    assert [f["ename"] for f in tasks.take_failures()] == ["EngineError"]
    tasks.forget_running()  # a new controller
    assert tasks.running == {}


def test_a_task_of_an_engine_not_known_yet_joins_its_host_once_known():
    tasks = fed()
    tasks.began(9, "new", NOW)
    tasks.ended(9, "new", NOW + 1)
    assert [row["key"] for row in tasks.bars(NOW + 1, by_host=True)["rows"]] == []
    tasks.place({**tasks.labels, 9: "node4"})
    assert [row["key"] for row in tasks.bars(NOW + 1, by_host=True)["rows"]] == ["node4"]


def test_100000_tasks_in_the_window_make_a_small_payload_with_exact_counts():
    tasks = fed()
    for n in range(100_000):  # 4 engines, 250 s of tasks of 10 ms
        engine, start = n % 4, NOW + n * 0.0025
        tasks.began(engine, f"t{n}", start)
        if n % 1000 == 7:
            tasks.failed(engine, f"t{n}", {"ename": "ValueError"}, start + 0.01)
        tasks.ended(engine, f"t{n}", start + 0.01)
    now = NOW + 251
    for by_host in (False, True):
        view = tasks.bars(now, by_host)
        assert sum(bar[2] + bar[3] for row in view["rows"] for bar in row["bars"]) == 100_000
        assert sum(bar[3] for row in view["rows"] for bar in row["bars"]) == 100
        assert all(len(row["bars"]) <= stream.WINDOW / stream.BIN + 1 for row in view["rows"])
        assert len(json.dumps(view, separators=(",", ":"))) < 60_000
    assert len(tasks.take_failures()) == 100


def test_history_carries_completed_tasks_over_restarts_and_keeps_failures(tmp_path, monkeypatch):
    path = str(tmp_path / "dashboard.sqlite")
    history = History(path)
    history.begin("Thu Dec  3 07:07:13 UTC 2026")
    assert history.completed({"a/1/1": ("a", "1", 5), "a/2/1": ("a", "2", 7)}) == 12
    assert history.completed({"a/1/1": ("a", "1", 2), "a/2/1": ("a", "2", 9)}) == 16  # a/1 counted anew
    assert history.completed({"a/2/1": ("a", "2", 9), "a/1/2": ("a", "1", 1)}) == 17  # a/1 restarted
    # the controller restarted, and its hub counted past the last counts before this read
    assert history.completed({"a/2/1": ("a", "2", 10), "a/1/2": ("a", "1", 3)}, restarts=1) == 30
    assert history.completed({"a/2/1": ("a", "2", 10), "a/1/2": ("a", "1", 3)}, restarts=1) == 30
    assert history.restarts() == {("a", "1"): 1, ("a", "2"): 0}
    monkeypatch.setattr("tasks.remote.jupyter.dashboard.history.KEEP", 8)
    history.add_failures([{"msg_id": f"m{n}", "time": NOW + n, "engine": n % 2, "host": "a",
                           "ename": "KeyError" if n % 3 else "OSError", "evalue": f"v{n}",
                           "place": "load", "traceback": f"tb {n}"} for n in range(10)])
    again = History(path)  # Jupyter restarted
    again.begin("Thu Dec  3 07:07:13 UTC 2026")
    assert again.completed({}, restarts=1) == 30 and again.failed() == 10  # all counted, 8 kept
    groups = again.failure_groups()
    assert [(g["ename"], g["count"], g["evalue"], g["msg_id"]) for g in groups] == [
        ("OSError", 3, "v9", "m9"), ("KeyError", 5, "v8", "m8")]
    assert groups[0]["engines"] == [0, 1] and groups[0]["first"] == NOW + 3
    assert again.traceback("m4")["traceback"] == "tb 4" and again.traceback("m0") is None
    again.begin("Fri Dec  4 08:00:00 UTC 2026")  # a new controller: a new history
    assert again.completed({}) == 0 and again.failed() == 0 and again.failure_groups() == []


def test_a_host_row_has_its_sample_and_from_50_engines_a_summary():
    plans = {"node1": {"expected": 2, "threads": 1, "devices": []}}
    sample = {"sampled": NOW - 30, "host": {"cpu_percent": 50.0, "cores": 4},
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
    watcher.engine_ids = {listener.session.session: 5}  # the engine of the messages signed here
    forger = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
    busy, msg_id = signed(listener.session, "status", {"execution_state": "busy"}, "apply_request")
    listener.take(signed(forger, "status", {"execution_state": "busy"}, "apply_request", engine=6)[0], NOW)
    listener.take(signed(listener.session, "status", {"execution_state": "busy"}, "kernel_info_request",
                         engine=7)[0], NOW)
    listener.take(busy, NOW)
    assert list(watcher.stream.running) == [5] and watcher.stream.running[5][0] == msg_id
    session, parent = listener.session, {"header": {"msg_id": msg_id, "msg_type": "apply_request"}}
    for msg_type, content, topic in (("error", {"ename": "OSError", "traceback": TRACEBACK}, "error"),
                                     ("status", {"execution_state": "idle"}, "status")):
        frames = session.serialize(session.msg(msg_type, content, parent=parent),
                                   ident=f"engine.5.{topic}".encode())
        listener.take([f if isinstance(f, bytes) else f.encode() for f in frames], NOW + 1)
    assert watcher.stream.running == {}
    assert [(f["msg_id"], f["ename"], f["place"]) for f in watcher.stream.take_failures()] == [
        (msg_id, "OSError", "load")]


def test_the_listener_reads_a_connection_file_written_in_place_once_it_is_whole(tmp_path):
    security = tmp_path / "security"
    security.mkdir()
    (security / "ipcontroller-client.json").write_text('{"key": "k", "sig')  # ipcontroller writing it
    listener = Listener(Watcher(str(tmp_path), str(tmp_path), "c"))
    with pytest.raises(ValueError):
        listener.connect()
    (security / "ipcontroller-client.json").write_text(json.dumps({
        "key": "k", "signature_scheme": "hmac-sha256", "interface": "tcp://127.0.0.1", "iopub": 1}))
    listener.connect()  # however alike the two files' times
    assert listener.socket is not None and listener.session.key == b"k"
    listener.socket.close()


def test_the_host_inbox_keeps_signed_reports_of_hosts_only(tmp_path):
    import logging

    from tornado.ioloop import IOLoop

    from tasks.remote.master import host_inbox
    from tasks.remote.shared.host_reports import MSG_TYPE

    inbox = host_inbox.Inbox.__new__(host_inbox.Inbox)  # its socket aside: what it does with a report
    inbox.folder, inbox.log = str(tmp_path), logging.getLogger("test")
    inbox.refusals = host_inbox.Refusals(inbox.log, IOLoop(), "host inbox: reports")
    inbox.session = Session(key=b"the-key", signature_scheme="hmac-sha256")
    forger = Session(key=b"not-the-key", signature_scheme="hmac-sha256")

    def report(session, label, age=0.0):
        frames = session.serialize(session.msg(MSG_TYPE, {"label": label, "host": {"cores": 2},
                                                          "engines": {"1": {"rss": 5}}, "age": age}))
        inbox.take([f if isinstance(f, bytes) else f.encode() for f in frames])
    for label in ("node01", "ann@[fe80::1]", "10.0.0.7"):
        report(inbox.session, label, age=12.0)
    report(forger, "forged")
    for label in ("../escape", ".hidden", "a/b", ""):
        report(inbox.session, label)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["10.0.0.7.json", "ann@[fe80::1].json", "node01.json"]
    kept = json.loads((tmp_path / "node01.json").read_text())
    assert kept["engines"] == {"1": {"rss": 5}} and 11 < time.time() - kept["sampled"] < 60


def test_a_controller_of_another_ipyparallel_runs_without_an_inbox():
    from tasks.remote.master import host_inbox

    class Other:  # an IPController without what the inbox needs
        def init_hub(self):
            pass
    assert host_inbox.install(Other, "/nonexistent") is False
    assert Other.init_hub is not None and not hasattr(Other, "host_inbox")
