"""
The cluster's client on the laptop: its connection file kept there, and how
``ipp.Client`` reaches the controller through SSH (``fab cluster.connect``).

Without encryption, ipyparallel's own ``sshserver`` does the tunnelling. With
``ENCRYPT=yes`` it cannot: ipyparallel gives the curve keys only to the first of
the sockets it tunnels, and the client hangs. Then ``cluster.connect`` holds
Fabric forwards to the controller's ports itself, and the client connects to them
on 127.0.0.1 as to a local controller (curve works as usual there).
"""

import base64
import json
import os
import tempfile
from pathlib import Path

from ..ssh import auth


def save(settings, data):
    """
    Write a client connection file (*data*, bytes) where ``cluster.connect`` keeps it:
    ``~/.ipp-cluster/NAME/client/ipcontroller-client.json``, the folders 0700 and the
    file 0600 (it holds the key that signs every message), atomically. Returns its path.
    """
    folder = Path.home() / ".ipp-cluster" / settings.cluster_name / "client"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for part in (folder.parent.parent, folder.parent, folder):
        part.chmod(0o700)
    path = folder / "ipcontroller-client.json"
    # Written beside it, then renamed: a client never reads half a file.
    descriptor, partial = tempfile.mkstemp(dir=folder, prefix=".ipcontroller-client.")
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp makes it 0600
            file.write(data)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise
    return path


def decode(encoded):
    """The client connection file from the master's ``client_file`` fact (base64)."""
    return base64.b64decode(encoded)


def ports(data):
    """``{name: port}`` of the controller's sockets in a client connection file."""
    return {name: value for name, value in json.loads(data).items()
            if isinstance(value, int) and not isinstance(value, bool)}


def through_forwards(data, local_ports):
    """The client connection file *data* rewritten for forwards: 127.0.0.1 and *local_ports*."""
    connection = json.loads(data)
    connection.update(local_ports, interface="tcp://127.0.0.1", location="127.0.0.1")
    return json.dumps(connection, indent=2).encode()


def remote_address(data):
    """The address the controller listens on, from a client connection file."""
    return json.loads(data)["interface"].split("://", 1)[1]


def lines(path, server=None, key=None):
    """
    The lines that make ``ipp.Client`` work with the file at *path*: through SSH to
    *server* (``user@host[:port]``, with *key* when one was named; else the agent's
    or the default ones), or directly.

    They ask for ipyparallel's paramiko tunnels: its OpenSSH ones run ``ssh -f`` under
    a pseudo-terminal, and the backgrounded ssh is at times killed as it starts (1 in
    3 here), leaving the client to time out. paramiko checks the master's host key in
    ``~/.ssh/known_hosts`` and refuses a host it does not know.

    The client's sockets get a routing id of their own, kept when they reconnect (the
    default of a ZeroMQ context made for this client, ``lasting()``, a new id for each
    client): ipyparallel leaves it to ZeroMQ, which draws a new one, and a controller
    that restarted could not send this client the results of its tasks in flight (see
    ``tasks/remote/jupyter/ipp_cluster.py``).
    """
    options = ""
    if server:
        options = f", sshserver={server!r}" + (f", sshkey={key!r}" if key else "") + ", paramiko=True"
    # Through SSH, over a slow link, ipyparallel's 10 s for the first answer can be short.
    return ["import uuid, zmq, ipyparallel as ipp",
            "def lasting(): context = zmq.Context(); context.routing_id = uuid.uuid4().bytes;"
            " return context  # results in flight at a controller restart still reach the client",
            f"rc = ipp.Client({str(path)!r}{options}, context=lasting(), timeout=30)"]


def server_of(connection):
    """``(user@host[:port], key or None)`` of a Fabric *connection*, for `lines`."""
    keys = auth.named_keys(connection.connect_kwargs)
    return auth.login(connection), keys[0] if keys else None
