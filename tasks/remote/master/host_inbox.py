"""
The controller's host inbox: what each engine host's ``host_report.py`` sends (its sample
and its engines' memory), kept in ``RUN_DIR/hosts/LABEL.json`` for the dashboard.

One PULL socket in the controller's own loop, bound where the engines reach the controller
(its address, a port drawn as ipcontroller draws the engines' ports), and secured as they
are: Curve where the controller has it on, and a message is taken only with the session's
signature (HMAC, with the cluster's key; with ``ENCRYPT=yes`` ipyparallel's key is empty,
and Curve alone keeps others out), at most `LARGEST` bytes, at most `QUEUED` of them held
unread, and only of the shape the dashboard reads (`host_reports.sample`: a key holder's
list where a dict belongs would break the page). A refused message is said in the log by
its reason alone, at most once a minute (`refusals.Refusals`): never what a peer sent,
which a peer without the key could send at network speed. Its port goes into the
engine connection file, under ``host_report.PORT_KEY``, which is how the hosts learn it;
a restored controller (``--restore``) reads it back from there and binds it again.

It uses internals of ipyparallel's ``IPController`` (`NEEDED`), checked by `install`; with
an ipyparallel that lacks them, or where the inbox fails, the controller runs without one
(the dashboard then shows no host samples), never fails for it.
"""

import json
import numbers
import os
import re
import time

import zmq
from jupyter_client.session import Session
from zmq.eventloop.zmqstream import ZMQStream

from ..shared.host_reports import MSG_TYPE, PORT_KEY, sample
from .refusals import Refusals, signed

LARGEST = 1 << 20  # bytes of one report taken at most
QUEUED = 8  # reports held unread at most (ZeroMQ's receive high-water mark)
LABEL = re.compile(r"[A-Za-z0-9_\[][A-Za-z0-9_.:@\[\]-]{0,252}\Z")  # a host of the inventory
NEEDED = ("init_hub", "save_connection_dict", "engine_json_file", "engine_info", "next_port", "bind",
          "engine_url", "context", "session")


class Inbox:
    """The socket (see the module), reading into *folder*."""

    def __init__(self, controller, folder):
        self.folder, self.log = folder, controller.log
        self.session = Session(key=controller.session.key,
                               signature_scheme=controller.session.signature_scheme,
                               packer=controller.session.packer, unpacker=controller.session.unpacker)
        socket = controller.context.socket(zmq.PULL)
        socket.maxmsgsize, socket.rcvhwm, socket.linger = LARGEST, QUEUED, 0
        controller.bind(socket, controller.engine_url(PORT_KEY))
        self.refusals = Refusals(self.log, controller.loop, "host inbox: reports")
        self.stream = ZMQStream(socket, controller.loop)
        self.stream.on_recv(self.take)
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def take(self, frames):
        """Keep the report of *frames*, or count it refused (see the module)."""
        try:
            reason = self.keep(frames)
        except Exception:  # the controller goes on, whatever came
            reason = "not kept"
        if reason:
            self.refusals.add(reason)

    def keep(self, frames):
        """Keep the report of *frames* in the folder; why not, in a fixed text, or None."""
        try:
            _, message = self.session.feed_identities(frames)
        except ValueError:
            return "unreadable"
        if not signed(self.session, message):
            return "bad signature"
        try:
            message = self.session.deserialize(message)  # again: and not seen before
        except Exception:
            return "unreadable or sent before"
        content, received = message["content"], time.time()
        if message["header"].get("msg_type") != MSG_TYPE or not isinstance(content, dict):
            return "not a host report"
        label, age = content.get("label"), content.get("age") or 0.0
        if not isinstance(label, str) or not LABEL.match(label) or not isinstance(age, numbers.Real):
            return "not a host report"
        age = min(max(0.0, float(age)), 1e9)  # the sample's age, by the host's own clock, dates it here
        report = {"sampled": received - age, "host": content.get("host") or {},
                  "engines": content.get("engines") or {}}
        if sample(report) is None:
            return "not a host report"
        write(os.path.join(self.folder, f"{label}.json"), report)
        return None


def write(path, document):
    """Write *document* at *path* whole: a reader sees the old one or the new one."""
    partial = f"{path}.partial"
    with open(partial, "w") as file:
        json.dump(document, file)
    os.replace(partial, path)


def install(controller_class, run_dir):
    """Give the controllers of *controller_class* an inbox (see the module); False where
    this ipyparallel lacks what it needs."""
    if not all(hasattr(controller_class, name) for name in NEEDED):
        return False
    init_hub, save = controller_class.init_hub, controller_class.save_connection_dict
    folder = os.path.join(run_dir, "hosts")

    def save_connection_dict(self, fname, cdict, *args, **kwargs):
        if fname == self.engine_json_file:  # the new engine file names the inbox's port
            try:
                self.engine_info.setdefault(PORT_KEY, self.next_port("engine"))
                cdict = dict(cdict, **{PORT_KEY: self.engine_info[PORT_KEY]})
            except Exception as error:  # the controller starts all the same, without an inbox
                self.log.warning(f"host inbox: no port for it ({error})")
        save(self, fname, cdict, *args, **kwargs)

    def with_inbox(self, *args, **kwargs):
        init_hub(self, *args, **kwargs)
        try:
            if self.engine_info.get(PORT_KEY):  # written now, or read back by --restore
                self.host_inbox = Inbox(self, folder)
            else:
                self.log.warning("host inbox: this engine connection file names none")
        except Exception as error:  # the controller runs all the same, without an inbox
            self.log.warning(f"host inbox: none ({error})")

    controller_class.save_connection_dict = save_connection_dict
    controller_class.init_hub = with_inbox
    return True
