"""
The controller's host inbox: what each engine host's ``host_report.py`` sends (its sample
and its engines' memory), kept in ``RUN_DIR/hosts/LABEL.json`` for the dashboard.

One PULL socket in the controller's own loop, bound where the engines reach the controller
(its address, a port drawn as ipcontroller draws the engines' ports), and secured as they
are: Curve where the controller has it on, and a message is taken only with the session's
signature (HMAC, with the cluster's key), at most `LARGEST` bytes. Its port goes into the
engine connection file, under ``host_report.PORT_KEY``, which is how the hosts learn it;
a restored controller (``--restore``) reads it back from there and binds it again.

It uses internals of ipyparallel's ``IPController`` (``init_hub``, ``save_connection_dict``,
``engine_info``, ``next_port``, ``bind``), checked by `install`: with another ipyparallel
the controller runs without an inbox (the dashboard then shows no host samples).
"""

import json
import os
import re
import time

import zmq
from jupyter_client.session import Session
from zmq.eventloop.zmqstream import ZMQStream

if __package__:  # imported as tasks.remote.host_inbox, by the tests
    from .host_report import MSG_TYPE, PORT_KEY
else:  # run from the run directory, where host_report.py lies beside it
    from host_report import MSG_TYPE, PORT_KEY

LARGEST = 1 << 20  # bytes of one report taken at most
LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}\Z")  # a host of the inventory
NEEDED = ("init_hub", "save_connection_dict", "engine_json_file", "next_port", "bind", "engine_url")


class Inbox:
    """The socket (see the module), reading into *folder*."""

    def __init__(self, controller, folder):
        self.folder, self.log = folder, controller.log
        self.session = Session(key=controller.session.key,
                               signature_scheme=controller.session.signature_scheme,
                               packer=controller.session.packer, unpacker=controller.session.unpacker)
        socket = controller.context.socket(zmq.PULL)
        socket.maxmsgsize, socket.linger = LARGEST, 0
        controller.bind(socket, controller.engine_url(PORT_KEY))
        self.stream = ZMQStream(socket, controller.loop)
        self.stream.on_recv(self.take)
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def take(self, frames):
        try:
            _, message = self.session.feed_identities(frames)
            message = self.session.deserialize(message)  # checks the signature
            content = message["content"]
            label = content.get("label", "")
            if message["header"]["msg_type"] != MSG_TYPE or not LABEL.match(label):
                raise ValueError(f"not a host report: {message['header']['msg_type']} {label!r}")
            report = {"received": time.time(), "host": content.get("host") or {},
                      "engines": content.get("engines") or {}}
            write(os.path.join(self.folder, f"{label}.json"), report)
        except Exception as error:  # a bad report says so, and the controller goes on
            self.log.warning(f"host inbox: a report refused: {error}")


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

    def save_connection_dict(self, fname, cdict):
        if fname == self.engine_json_file:  # the new engine file names the inbox's port
            self.engine_info.setdefault(PORT_KEY, self.next_port("engine"))
            cdict = dict(cdict, **{PORT_KEY: self.engine_info[PORT_KEY]})
        save(self, fname, cdict)

    def with_inbox(self):
        init_hub(self)
        if self.engine_info.get(PORT_KEY):  # written now, or read back by --restore
            self.host_inbox = Inbox(self, folder)
        else:
            self.log.warning("host inbox: this engine connection file names none")

    controller_class.save_connection_dict = save_connection_dict
    controller_class.init_hub = with_inbox
    return True
