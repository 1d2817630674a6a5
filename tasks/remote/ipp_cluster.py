"""
A client of the cluster that a controller restart does not leave waiting.

``tasks/remote/start_master.sh`` puts this module on the ``PYTHONPATH`` of the master's
Jupyter and loads it into every Python kernel there (an IPython extension, named by
the kernel spec ``tasks/remote/kernel.json``), so that a notebook's plain::

    import ipyparallel as ipp
    rc = ipp.Client()                # the profile from IPP_PROFILE

is this module's `Client`. A notebook may also say so itself (``ipp_cluster.Client()``,
the same arguments as ipyparallel's).

When the controller crashes, its nanny starts it again with ``--restore`` (see
``tasks/remote/controller.py``), and the tasks that were in flight end with their
result or a ``ControllerRestarted`` error. The new controller can send them only to a
client it can still tell apart: ipyparallel's `Client` leaves the routing id of its
sockets to ZeroMQ, which draws a new one when a socket reconnects, so ipyparallel's own
client runs new work after a restart but waits for ever for what was in flight. This
one gives each of its sockets a routing id of its own, kept across reconnections;
nothing else differs.
"""

import functools
import os
import sys
import uuid

import zmq

#: The ipyparallel releases whose controller ``controller.py`` restores (its scheduler's
#: internals): with another, ipyparallel's own client is left as it is.
KNOWN_MAJORS = (9,)


class LastingContext(zmq.Context):
    """A ZeroMQ context whose request sockets keep one routing id for good."""

    def socket(self, socket_type, *args, **kwargs):
        socket = super().socket(socket_type, *args, **kwargs)
        if socket_type == zmq.DEALER:
            socket.routing_id = f"ipp-cluster-{uuid.uuid4().hex}".encode()
        return socket


def _with_defaults(args, kwargs):
    """*kwargs* for ipyparallel's `Client`: a `LastingContext`, and the profile from
    ``IPP_PROFILE`` where *args* and *kwargs* name no connection."""
    kwargs.setdefault("context", LastingContext())
    named = {"url_file", "profile", "profile_dir", "cluster", "cluster_id", "connection_info"}
    if not args and not named & set(kwargs):
        kwargs["profile"] = os.environ.get("IPP_PROFILE", "default")
    return kwargs


def Client(*args, **kwargs):
    """ipyparallel's `Client` (same arguments; the profile from ``IPP_PROFILE``), whose
    tasks in flight at a controller restart end with their result or an error."""
    import ipyparallel

    return ipyparallel.Client(*args, **_with_defaults(args, kwargs))


def install():
    """
    Make ipyparallel's own `Client` this module's, in this process: True where done.
    With an ipyparallel that is not one of `KNOWN_MAJORS`, says so in one line on stderr
    and leaves it as it is (False).
    """
    import ipyparallel

    original = ipyparallel.Client.__init__
    if getattr(original, "ipp_cluster", False):
        return True
    version = getattr(ipyparallel, "__version__", "unknown")
    if version.split(".")[0] not in {str(major) for major in KNOWN_MAJORS}:
        print(f"ipp_cluster: ipyparallel {version} is not a version this cluster knows"
              f" ({', '.join(f'{major}.x' for major in KNOWN_MAJORS)}): ipp.Client() is"
              " ipyparallel's own, and a task in flight at a controller restart may never"
              " end; use ipp_cluster.Client()", file=sys.stderr)
        return False

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **_with_defaults(args, kwargs))

    __init__.ipp_cluster = True
    ipyparallel.Client.__init__ = __init__
    return True


def load_ipython_extension(shell):
    """Loaded by the master's kernels (``--IPKernelApp.extra_extensions=ipp_cluster``)."""
    try:
        install()
    except ImportError:  # a kernel without ipyparallel: nothing to do
        pass


def failed_by_restart(error):
    """Whether *error*, raised by a result, says that the task was lost in a controller
    restart (so that submitting it again is safe)."""
    return getattr(error, "ename", None) == "ControllerRestarted"
