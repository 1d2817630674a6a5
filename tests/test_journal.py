"""
The controller's journal of tasks in flight, written ahead into an append-only file
(``tasks/remote/master/journal.py``): what a crash mid-write leaves, and that the file stays
small however many tasks went through. The scheduler around it is tested end to end
(tests/test_e2e_controller_healing.py).
"""

import os

from jupyter_client.session import Session

from tasks.remote.master import journal
from tasks.remote.master.controller import sign_once


def test_a_record_cut_short_by_a_crash_keeps_every_task_before_it(tmp_path):
    path = str(tmp_path / "tasks-in-flight.journal")
    written = journal.Journal(path, keep=False)
    written.add("a", b"client-1", b'{"msg_id": "a"}')
    written.sent("a", b"engine-1")
    written.add("b", b"client-1", b'{"msg_id": "b"}')
    whole = os.path.getsize(path)
    written.add("c", b"client-2", b'{"msg_id": "c"}')
    os.truncate(path, whole + 7)  # the kill came in the middle of c's record
    assert sorted(journal.Journal(path, keep=True).rows()) == [
        ("a", b"client-1", b'{"msg_id": "a"}', b"engine-1"), ("b", b"client-1", b'{"msg_id": "b"}', None)]


def test_the_file_stays_small_however_many_tasks_went_through_and_keeps_those_in_flight(tmp_path):
    path = str(tmp_path / "tasks-in-flight.journal")
    written = journal.Journal(path, keep=False)
    written.add("long", b"client-1", b"h" * 100)
    written.sent("long", b"engine-1")
    for n in range(3 * journal.SMALLEST):
        written.add(f"t{n}", b"client-1", b"h" * 100)
        written.sent(f"t{n}", b"engine-2")
        written.done(f"t{n}")
    assert os.path.getsize(path) < journal.SMALLEST * 150  # rewritten: not 90,000 records
    assert journal.Journal(path, keep=True).rows() == [("long", b"client-1", b"h" * 100, b"engine-1")]


def test_a_signature_checked_once_is_not_made_again_and_other_frames_get_their_own():
    session = Session(key=b"the cluster's key")
    frames = session.serialize(session.msg("apply_request", {}))[2:6]  # header..content
    genuine = session.sign(frames)
    made, plain = [], session.sign
    session.sign = lambda parts: made.append(1) or plain(parts)
    sign_once(session)
    assert session.sign(frames) == session.sign(list(frames)) == genuine and len(made) == 1
    assert session.sign([bytes(bytearray(f)) for f in frames]) == genuine and len(made) == 2
    assert session.sign([*frames[:3], b'{"forged": 1}']) != genuine
