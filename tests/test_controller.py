"""
Unit tests of what the controller keeps for a restart (``tasks/remote/controller.py``):
the journal of tasks in flight and the Curve key pair. The scheduler itself is tested end
to end (tests/test_e2e_controller_healing.py): a controller killed mid-map.
"""

import os
import stat

from tasks.remote import controller


def test_the_journal_keeps_what_is_in_flight_across_a_reopening_and_a_new_start_clears_it(tmp_path):
    path = str(tmp_path / "tasks-in-flight.sqlite")
    journal = controller.Journal(path, keep=False)
    for msg_id in ("a", "b", "c"):
        journal.add(msg_id, b"client-1", b'{"msg_id": "%s"}' % msg_id.encode())
    journal.sent("b", b"engine-9")
    journal.done("c")
    # as a crash leaves it: nothing closed, nothing committed by hand
    kept = controller.Journal(path, keep=True).rows()
    assert sorted(kept) == [("a", b"client-1", b'{"msg_id": "a"}', None),
                            ("b", b"client-1", b'{"msg_id": "b"}', b"engine-9")]
    assert controller.Journal(path, keep=False).rows() == []  # a new controller: no old tasks


def test_the_curve_keys_are_kept_0600_for_a_restore_and_new_for_a_new_controller(tmp_path):
    path = str(tmp_path / "controller.curve")
    first = controller.curve_keys(path, restoring=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert all(len(key) == 40 for key in first)  # Z85 of 32 bytes
    assert controller.curve_keys(path, restoring=True) == first
    assert controller.curve_keys(path, restoring=False) != first
