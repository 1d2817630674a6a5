"""
Unit tests of the dashboard's listener (``tasks/remote/jupyter/dashboard/listener.py``) against what a
peer may send on the IOPub relay: the engine of a message is the one its signed part names
(the topic frame is not signed), and what the listener holds is bounded.
"""

import json

from jupyter_client.session import Session

from tasks.remote.jupyter.dashboard import stream
from tasks.remote.jupyter.dashboard import listener as listening
from tasks.remote.jupyter.dashboard.listener import Listener
from tasks.remote.jupyter.dashboard.extension import Watcher

NOW = 1_800_000_000.0


def listener_of(tmp_path, engines):
    """A listener whose watcher last heard the hub name *engines* ({id: uuid})."""
    watcher = Watcher(str(tmp_path), str(tmp_path), "c")
    watcher.engine_ids = {uuid: eid for eid, uuid in engines.items()}
    listener = Listener(watcher)
    listener.session = Session(key=b"the-key", signature_scheme="hmac-sha256")
    return watcher, listener


def busy(session, uuid, topic_id):
    """An engine's ``busy`` for a task, as *uuid*'s engine signs it, under the topic of *topic_id*."""
    parent = session.msg("apply_request", {})
    message = session.msg("status", {"execution_state": "busy"}, parent=parent, metadata={"engine": uuid})
    frames = session.serialize(message, ident=f"engine.{topic_id}.status".encode())
    return [f if isinstance(f, bytes) else f.encode() for f in frames], parent["header"]["msg_id"]


def test_a_message_s_engine_is_the_one_its_signed_part_names_not_its_topic(tmp_path):
    watcher, listener = listener_of(tmp_path, {5: "nodeA/1/100", 9: "nodeB/1/100"})
    frames, msg_id = busy(listener.session, "nodeA/1/100", topic_id=9)  # a topic rewritten
    listener.take(frames, NOW)
    assert list(watcher.stream.running) == [5] and watcher.stream.running[5][0] == msg_id


def test_a_message_of_an_engine_the_hub_has_not_named_yet_waits_for_the_next_read(tmp_path):
    watcher, listener = listener_of(tmp_path, {5: "nodeA/1/100"})
    frames, msg_id = busy(listener.session, "nodeC/1/100", topic_id=7)
    listener.take(frames, NOW)
    assert watcher.stream.running == {}
    watcher.engine_ids["nodeC/1/100"] = 12  # the hub names it at the next read
    listener.retake()
    assert list(watcher.stream.running) == [12]
    for number in range(listening.UNPLACED + 50):  # never named: dropped at the next read, and bounded
        listener.take(busy(listener.session, f"ghost/{number + 1}/1", topic_id=3)[0], NOW)
    assert len(listener.waiting) == listening.UNPLACED
    listener.retake()
    assert len(listener.waiting) == 0 and list(watcher.stream.running) == [12]


def test_the_listener_holds_a_bounded_number_of_messages(tmp_path):
    security = tmp_path / "security"
    security.mkdir()
    (security / "ipcontroller-client.json").write_text(json.dumps({
        "key": "k", "signature_scheme": "hmac-sha256", "interface": "tcp://127.0.0.1", "iopub": 1}))
    listener = Listener(Watcher(str(tmp_path), str(tmp_path), "c"))
    listener.connect()
    assert 0 < listener.socket.rcvhwm <= 100_000
    listener.socket.close()
    tasks = stream.TaskStream()
    for number in range(3 * stream.KEPT):  # failures and tasks of engines never placed
        tasks.failed(number, f"task-{number}", {"ename": "E"}, NOW)
        tasks.ended(number, f"other-{number}", NOW)
    assert len(tasks.errors) <= stream.KEPT and len(tasks.unplaced) <= stream.KEPT
