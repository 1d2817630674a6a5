"""
Unit tests of what the controller keeps for a restart (``tasks/remote/master/controller.py``):
the journal of tasks in flight, the Curve key pair, what waits for a client that is not
connected, and the signature of what engines send. The scheduler itself is tested end to
end (tests/test_e2e_controller_healing.py): a controller killed mid-map.
"""

import asyncio
import logging
import os
import stat

import pytest
import zmq
from jupyter_client.session import Session
from tornado.ioloop import IOLoop
from zmq.eventloop.zmqstream import ZMQStream

from tasks.remote.master import controller
from tasks.remote.master import outbox
from tests.waiting import wait_until


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


@pytest.fixture
def router():
    """A ZeroMQ router on 127.0.0.1, its stream on a loop of its own, and a way to connect
    a peer to it under a routing id."""
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    loop = IOLoop()
    stream = ZMQStream(socket, io_loop=loop)

    def peer(routing_id):
        dealer = context.socket(zmq.DEALER)
        dealer.routing_id = routing_id
        dealer.connect(f"tcp://127.0.0.1:{port}")
        return dealer
    stream.peer, stream.loop = peer, loop
    yield stream
    stream.close()
    loop.close()
    context.destroy(linger=0)


def received(peer, count, loop, timeout=20):
    """The first *count* messages *peer* receives while *loop* runs (its retries)."""
    got = []

    async def take():
        while len(got) < count:
            while peer.poll(0):
                got.append(peer.recv_multipart())
            await asyncio.sleep(0.01)
    loop.run_sync(take, timeout=timeout)
    return got


def run_until(loop, predicate, what, timeout=20):
    """Run *loop* (its timers fire meanwhile) until *predicate* holds: `wait_until` on a loop."""
    def turned():
        loop.run_sync(lambda: asyncio.sleep(0.01))
        return predicate()
    return wait_until(turned, timeout, what, interval=0)


def test_what_a_client_cannot_take_yet_waits_in_order_and_reaches_it_when_it_connects(router):
    box = outbox.Outbox(router, router.loop, logging.getLogger("test"), window=60, retry=0.05)
    for number in range(1000):
        box.send([b"client-1", b"%d" % number])
    # held for the client as one entry, tried once a round, not 1000 timers of its own
    assert list(box.held) == [b"client-1"] and len(box.held[b"client-1"][1]) == 1000
    client = router.peer(b"client-1")
    assert received(client, 1000, router.loop) == [[b"%d" % n] for n in range(1000)]
    assert box.held == {}


def test_what_waits_for_a_client_that_never_comes_back_is_dropped_after_the_window(router, caplog):
    box = outbox.Outbox(router, router.loop, logging.getLogger("test"), window=0.2, retry=0.05)
    for number in range(10):
        box.send([b"gone", b"%d" % number])
    assert list(box.held) == [b"gone"] and len(box.held[b"gone"][1]) == 10  # held, for the window
    began = router.loop.time()
    run_until(router.loop, lambda: box.held == {} and box.timer is None,
              "what was held for b'gone' dropped, and no retry left")
    assert router.loop.time() - began >= 0.2 - 0.05  # not before the window (less the retry)
    assert "b'gone' did not come back in 0.2 s: 10 messages for it dropped" in caplog.text


def test_a_fence_reply_without_the_sessions_signature_or_sent_again_releases_nothing(router, tmp_path):
    session = Session(key=b"the cluster's key")
    scheduler = controller.HealingScheduler(session=session, engine_stream=router,
                                            client_stream=router, loop=router.loop)
    scheduler.take_journal(str(tmp_path / "journal.sqlite"), restoring=True)
    header = session.pack(session.msg_header("apply_request"))
    scheduler.held.add(b"engine-1")
    scheduler.restored[b"engine-1"] = {"task-1": (b"client-1", header)}
    reply = session.msg("kernel_info_reply", {}, parent=session.msg("kernel_info_request", {}))
    def received_frames(signer):  # as the engine stream hands them over (copy=False)
        return [zmq.Frame(f) for f in signer.serialize(reply, ident=[b"engine-1", controller.FENCE])]
    scheduler.dispatch_result(received_frames(Session(key=b"a guess")))
    assert b"engine-1" in scheduler.held and "task-1" in scheduler.restored[b"engine-1"]
    genuine = received_frames(session)
    scheduler.dispatch_result(genuine)  # the engine's own: its restored task ends, it is released
    assert b"engine-1" not in scheduler.held and b"engine-1" not in scheduler.restored
    scheduler.held.add(b"engine-1")
    scheduler.restored[b"engine-1"] = {"task-2": (b"client-1", header)}
    scheduler.dispatch_result([zmq.Frame(frame.bytes) for frame in genuine])  # captured, sent again
    assert b"engine-1" in scheduler.held and "task-2" in scheduler.restored[b"engine-1"]


def test_a_result_without_the_signature_is_refused_before_anything_of_it_is_read(router, tmp_path, caplog):
    """Its parent header names a task of this scheduler's: read before the signature, it
    led the message to ipyparallel's handler, which logs a refused message with its
    traceback, one by one."""
    session = Session(key=b"the cluster's key")
    scheduler = controller.HealingScheduler(session=session, engine_stream=router,
                                            client_stream=router, loop=router.loop)
    scheduler.take_journal(str(tmp_path / "journal.sqlite"), restoring=False)
    scheduler.retries["task-1"] = 1
    forger = Session(key=b"a guess")
    request = session.msg("apply_request", {})
    request["header"]["msg_id"] = "task-1"
    reply = forger.msg("apply_reply", {"status": "ok", "forged": "FORGED-BYTES" * 1000}, parent=request)
    for _ in range(10):
        scheduler.dispatch_result([zmq.Frame(f) for f in forger.serialize(reply, ident=[b"engine-1", b"client-1"])])
    assert "task::Invalid result" not in caplog.text and "FORGED-BYTES" not in caplog.text
    assert caplog.text.count("refused") == 1 and "task-1" in scheduler.retries
