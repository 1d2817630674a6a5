"""
Run ipyparallel's controller so that a crash loses no engine and leaves no task hanging.

``tasks/remote/steps/master/start_master.sh`` unpacks it into the run directory (the package
``ipp_remote``); the controller's nanny (``shared/nanny.py``) runs it in the controller's
screen session::

    python RUN_DIR/ipp_remote master.controller RUN_DIR IPCONTROLLER ARGS...

and, after a crash, again with ``--restore``: ipcontroller then reuses its connection files
(same ports, same key) and takes the engines back under their ids from its engine state
file. With ``IPP_ENABLE_CURVE=1`` the controller's Curve key pair is kept in
``RUN_DIR/controller.curve`` (0600), since the connection files hold the public half only.

What ipyparallel's own task scheduler loses in a crash, measured (2 engines, 10 tasks of
2 s, the controller killed at 3 s): the 2 tasks that ran finished on their engines, and
their results reached the new scheduler, which dropped them (a KeyError: it had never
seen them); the 6 tasks still queued in the dead scheduler were gone. The client waited
for all 8 for ever. `HealingScheduler` keeps a journal of the tasks in flight, in SQLite
in the run directory (one small write per submission, dispatch and end; it survives
the process, not the machine), and after a restart ends every task of it:

- a task that had not reached an engine ends at once with a ``ControllerRestarted``
  error;
- a task that had reached an engine ends with its result when the engine sends it;
  once the engine answers a ``kernel_info_request`` sent behind those tasks (an
  engine answers in order), the tasks it did not answer for were finished before
  the crash, their results lost with the old scheduler: they end with the error;
- a task whose engine goes away ends with the error.

The engines that the restored hub hands the scheduler at its start are held back until
they answer such a request: until an engine's socket has reconnected, a router drops
what it sends there, and a task sent to it would be lost.

A result or an error reaches a client only where ZeroMQ can route it: a client whose
task socket has a routing id of its own. ipyparallel's `Client` leaves it to ZeroMQ,
which draws a new one when the socket reconnects; ``tasks/remote/jupyter/ipp_cluster.py`` (loaded
into every kernel of the master's Jupyter) and the lines ``cluster.connect`` prints give a
client a lasting one. What cannot be routed yet waits in an `Outbox`, per client, for
`DELIVERY_WINDOW` s: tried once per client and round, however many tasks it holds.

Frames from the engines and the clients are taken only with the session's signature (HMAC),
seen once, as ipyparallel's own scheduler takes them: a peer that reaches the engine port
without the key, or sends again what it captured, cannot end a restored task or release a
held engine. The signature is checked before anything of a message is read, and what is
refused is counted in the log, never written there (``refusals.py``): ipyparallel's own
handlers would log each such message whole, with a traceback.
"""

import logging
import multiprocessing
import os
import sys

import zmq
from ipyparallel import util
from ipyparallel.controller import app
from ipyparallel.controller.task_scheduler import TaskScheduler

from . import host_inbox, port_pool
from .journal import Journal
from .outbox import Outbox, as_bytes
from .refusals import Refusals, cap_log_records, refusal, throttle

#: The routing id of the requests that tell when an engine answered all before them.
FENCE = b"ipp-cluster-fence"
#: Seconds a client has to reconnect and take a result or error of a restored task.
DELIVERY_WINDOW = 600.0
#: Seconds a restored engine has to come back before its tasks end with the error.
ENGINE_WINDOW = 120.0
RETRY = 0.5


class HealingScheduler(TaskScheduler):
    """ipyparallel's task scheduler, with a journal of its tasks in flight (see the module)."""

    def start(self):
        unsent = self.take_journal(os.environ["IPP_CLUSTER_JOURNAL"],
                                   os.environ.get("IPP_CLUSTER_RESTORING") == "1")
        super().start()
        for msg_id, client, header in unsent:
            self.end_lost(msg_id, client, header, b"", "before it reached an engine")
        if self.restored:
            self.log.info(f"restored {sum(map(len, self.restored.values()))} tasks in flight"
                          f" on {len(self.restored)} engines")
        if self.restoring:
            self.loop.call_later(ENGINE_WINDOW, self.end_absent)

    def take_journal(self, path, restoring):
        """Open the journal at *path* (kept when *restoring*, else emptied) and take back
        the tasks that had reached an engine; returns those that had not."""
        self.restoring = restoring
        self.journal = Journal(path, keep=restoring)
        self.restored = {}  # engine ident: {msg_id: (client ident, request header)}
        self.held, self.holding = set(), False  # restored engines, until they answer
        self.to_clients = Outbox(self.client_stream, self.loop, self.log, DELIVERY_WINDOW, RETRY)
        self.to_engines = Outbox(self.engine_stream, self.loop, self.log, ENGINE_WINDOW, 0.1)
        self.refusals = Refusals(self.log, self.loop, "results from engines")
        self.from_clients = Refusals(self.log, self.loop, "tasks from clients")
        throttle(self.log)  # this process's own log (in a thread, the hub's: already throttled)
        sign_once(self.session)
        unsent = []
        for msg_id, client, header, engine in self.journal.rows():
            if engine is None:
                unsent.append((msg_id, client, header))
            else:
                self.restored.setdefault(engine, {})[msg_id] = (client, header)
        return unsent

    # The journal follows the scheduler's own steps.

    def dispatch_submission(self, raw_msg):
        """A client's task, refused unless signed and readable: ipyparallel's own handler
        would log the message whole, with a traceback, for any peer (counted here instead)."""
        try:  # the signature first, checked without recording it (see `signed`)
            idents, msg = self.session.feed_identities(raw_msg, copy=False)
            why = refusal(self.session, msg)
            if why is None:
                header = as_bytes(msg[1])
                msg_id = self.session.unpack(header)["msg_id"]
        except Exception:
            why = "unreadable"
        if why is not None:
            return self.from_clients.add(why)
        self.journal.add(msg_id, as_bytes(idents[0]), header)
        super().dispatch_submission(raw_msg)

    def submit_task(self, job, indices=None):
        super().submit_task(job, indices)
        # ipyparallel's `add_job` puts the engine it chose last (its LRU order): checked
        # there first, then, should a scheduler of another version order them otherwise, in all
        last = self.targets[-1] if self.targets else None
        if last is not None and job.msg_id in self.pending.get(last, ()):
            return self.journal.sent(job.msg_id, last)
        for engine, jobs in self.pending.items():
            if job.msg_id in jobs:
                return self.journal.sent(job.msg_id, engine)

    def fail_unreachable(self, msg_id, *args, **kwargs):
        super().fail_unreachable(msg_id, *args, **kwargs)
        self.journal.done(msg_id)

    def dispatch_result(self, raw_msg):
        try:  # the signature first: nothing of a message is read before it is checked
            idents, msg = self.session.feed_identities(raw_msg, copy=False)
            why = refusal(self.session, msg)
            if why is not None:
                return self.refusals.add(why)
            engine, client = as_bytes(idents[0]), as_bytes(idents[1])
            msg_id = self.session.unpack(as_bytes(msg[2]))["msg_id"]
        except Exception:  # ipyparallel's handler would log it whole, with a traceback
            return self.refusals.add("unreadable")
        if msg_id in self.retries:  # a task of this scheduler, whose handler checks the message
            super().dispatch_result(raw_msg)
            if msg_id not in self.retries:  # its end, not a retry
                self.journal.done(msg_id)
            return
        try:  # that it was not seen before (a message sent again);
            self.session.deserialize(msg, copy=False)  # with its content: the signature is kept
        except Exception:
            return self.refusals.add("sent again, or unreadable")
        if client == FENCE:
            self.fence_passed(engine)
        elif self.restored.get(engine, {}).pop(msg_id, None):
            self.log.info(f"task {msg_id}, restored, ended on its engine")
            self.journal.done(msg_id)
            self.to_clients.send([client, engine, *raw_msg[len(idents):]])
        else:
            self.log.warning(f"result of a task this controller does not know: {msg_id}")

    # Restored tasks.

    def dispatch_query_reply(self, msg):
        self.holding = self.restoring  # the engines of this reply are the restored hub's
        try:
            super().dispatch_query_reply(msg)
        finally:
            self.holding = False

    def _register_engine(self, uid):
        if not self.holding:
            return super()._register_engine(uid)
        self.held.add(uid)  # ask it for an answer, behind the restored tasks it has
        fence = self.session.msg("kernel_info_request", {})
        self.to_engines.send(self.session.serialize(fence, ident=[uid, FENCE]))

    def fence_passed(self, engine):
        if engine in self.held:  # its socket is back: it takes tasks from now on
            self.held.discard(engine)
            super()._register_engine(engine)
        for msg_id, (client, header) in self.restored.pop(engine, {}).items():
            self.end_lost(msg_id, client, header, engine,
                          "it ended on its engine before the crash; its result was lost")

    def _unregister_engine(self, uid):
        if uid in self.held:
            self.held.discard(uid)
        else:
            super()._unregister_engine(uid)
        for msg_id, (client, header) in self.restored.pop(uid, {}).items():
            self.end_lost(msg_id, client, header, uid, "its engine went away")

    def end_absent(self):
        for engine in [e for e in self.restored if e not in self.targets]:
            for msg_id, (client, header) in self.restored.pop(engine).items():
                self.end_lost(msg_id, client, header, engine,
                              f"its engine did not come back in {ENGINE_WINDOW:g} s")

    def end_lost(self, msg_id, client, header, engine, why):
        """End the restored task *msg_id* with a ``ControllerRestarted`` error saying *why*."""
        self.log.info(f"task {msg_id}, restored, ends with ControllerRestarted: {why}")
        evalue = (f"the controller restarted while task {msg_id} was in flight, {why};"
                  " submit it again")
        content = {"status": "error", "ename": "ControllerRestarted", "evalue": evalue,
                   "traceback": [f"ControllerRestarted: {evalue}"],
                   "engine_info": {"engine_uuid": engine.decode("ascii")} if engine else {}}
        metadata = {"status": "error", "engine": engine.decode("ascii"), "date": util.utcnow(),
                    "dependencies_met": True}
        reply = self.session.msg("apply_reply", content, parent=self.session.unpack(header),
                                 metadata=metadata)
        self.journal.done(msg_id)
        self.to_clients.send(self.session.serialize(reply, ident=[client, engine]))


def sign_once(session):
    """Have *session* sign each message's frames once: `refusal` checks a signature before
    ipyparallel's handler reads the message, whose `Session.deserialize` checks it again
    (``self.sign(msg_list[1:5])``) with the very same frames (`zmq.Frame.bytes` is made once):
    the signature of the last frames signed is kept for them, by identity, and made anew
    for any others. Where a Session has no `sign` to wrap, it is left as it is."""
    sign = getattr(session, "sign", None)
    if sign is None or getattr(sign, "once", False):
        return
    last = {"frames": (), "signature": None}  # the frames are held: no other object takes their ids

    def signed_once(frames):
        frames = tuple(frames)
        if len(frames) == len(last["frames"]) and all(a is b for a, b in zip(frames, last["frames"])):
            return last["signature"]
        last["frames"], last["signature"] = frames, sign(list(frames))
        return last["signature"]
    signed_once.once = True
    session.sign = signed_once


def curve_keys(path, restoring):
    """The controller's Curve key pair: kept in *path* (0600) when restoring, else new."""
    if restoring and os.path.exists(path):
        with open(path, "rb") as keys:
            public, secret = keys.read().split()
    else:
        public, secret = zmq.curve_keypair()
        descriptor = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as keys:
            keys.write(public + b"\n" + secret + b"\n")
        os.replace(path + ".new", path)
    return public.decode("ascii"), secret.decode("ascii")


def main(argv):
    run_dir, arguments = argv[1], argv[2:]
    restoring = "--restore" in arguments
    os.environ["IPP_CLUSTER_JOURNAL"] = os.path.join(run_dir, "tasks-in-flight.journal")
    os.environ["IPP_CLUSTER_RESTORING"] = "1" if restoring else "0"
    if os.environ.get("IPP_ENABLE_CURVE") == "1":
        public, secret = curve_keys(os.path.join(run_dir, "controller.curve"), restoring)
        os.environ["IPP_CURVE_PUBLICKEY"], os.environ["IPP_CURVE_SECRETKEY"] = public, secret
    app.TaskScheduler = HealingScheduler  # the class ipcontroller starts its scheduler with
    if "fork" in multiprocessing.get_all_start_methods():  # the schedulers and the heart
        multiprocessing.set_start_method("fork", force=True)  # monitor: as set up below
    cap_log_records()  # what ipyparallel logs of a peer's message, cut short
    throttle(logging.getLogger(app.IPController.__name__))  # the hub's log and heart monitor's
    host_inbox.install(app.IPController, run_dir)  # the hosts' reports, for the dashboard
    port_pool.install(app.IPController)  # CONTROLLER_PORTS: its pool alone, its free ports
    try:  # named as ipcontroller in ps, top and pkill, as before (its scheduler processes too)
        with open("/proc/self/comm", "w") as comm:
            comm.write("ipcontroller")
    except OSError:
        pass
    app.main(argv=arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
