"""
A client of the cluster that a controller restart does not leave waiting.

``tasks/remote/start_master.sh`` puts this module on the ``PYTHONPATH`` of the master's
Jupyter, so a notebook there can write::

    import ipp_cluster
    rc = ipp_cluster.Client()        # ipyparallel's Client, same arguments

When the controller crashes, its nanny starts it again with ``--restore`` (see
``tasks/remote/controller.py``), and the tasks that were in flight end with their
result or a ``ControllerRestarted`` error. The new controller can send them only to a
client it can still tell apart: ipyparallel's `Client` leaves the routing id of its
sockets to ZeroMQ, which draws a new one when a socket reconnects, so a plain
``ipp.Client()`` runs new work after a restart but waits for ever for what was in
flight. This one gives each of its sockets a routing id of its own, kept across
reconnections; nothing else differs.
"""

import os
import uuid

import ipyparallel
import zmq


class LastingContext(zmq.Context):
    """A ZeroMQ context whose request sockets keep one routing id for good."""

    def socket(self, socket_type, *args, **kwargs):
        socket = super().socket(socket_type, *args, **kwargs)
        if socket_type == zmq.DEALER:
            socket.routing_id = f"ipp-cluster-{uuid.uuid4().hex}".encode()
        return socket


def Client(*args, **kwargs):
    """ipyparallel's `Client` (same arguments; the profile from ``IPP_PROFILE``), whose
    tasks in flight at a controller restart end with their result or an error."""
    kwargs.setdefault("context", LastingContext())
    if not args and not {"url_file", "profile", "profile_dir"} & set(kwargs):
        kwargs["profile"] = os.environ.get("IPP_PROFILE", "default")
    return ipyparallel.Client(*args, **kwargs)


def failed_by_restart(error):
    """Whether *error*, raised by a result, says that the task was lost in a controller
    restart (so that submitting it again is safe)."""
    return getattr(error, "ename", None) == "ControllerRestarted"
