"""
A client of the cluster that a controller restart does not leave waiting.

``tasks/remote/start_master.sh`` puts this module on the ``PYTHONPATH`` of the master's
Jupyter, which loads it as a server extension: every IPython kernel there then loads it
too (an IPython extension, see `load_into_kernels`), so that a notebook's plain::

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


_context = None, None  # this process's LastingContext, and the pid that made it


def lasting_context():
    """This process's `LastingContext` (one for all its clients, as ipyparallel shares
    ``zmq.Context.instance()``; a forked child makes its own)."""
    global _context
    context, pid = _context
    if context is None or context.closed or pid != os.getpid():
        _context = context, pid = LastingContext(), os.getpid()
    return context


def _with_defaults(args, kwargs):
    """*kwargs* for ipyparallel's `Client`: the `lasting_context`, and the profile from
    ``IPP_PROFILE`` where *args* and *kwargs* name no connection."""
    kwargs.setdefault("context", lasting_context())
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
    With an ipyparallel that is not one of `KNOWN_MAJORS`, it stays ipyparallel's, and
    the first one made says so in one line on stderr (in the notebook, under that cell).
    """
    import ipyparallel

    original = ipyparallel.Client.__init__
    if getattr(original, "ipp_cluster", False):
        return True
    version = getattr(ipyparallel, "__version__", "unknown")
    known = version.split(".")[0] in {str(major) for major in KNOWN_MAJORS}
    warned = []

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        if known:
            kwargs = _with_defaults(args, kwargs)
        elif not warned:
            warned.append(True)
            print(f"ipp_cluster: ipyparallel {version} is not a version this cluster knows"
                  f" ({', '.join(f'{major}.x' for major in KNOWN_MAJORS)}): ipp.Client() is"
                  " ipyparallel's own, and a task in flight at a controller restart may never"
                  " end", file=sys.stderr)
        original(self, *args, **kwargs)

    __init__.ipp_cluster = True
    ipyparallel.Client.__init__ = __init__
    return known


def load_into_kernels(specs):
    """Make the kernel specs that *specs* (Jupyter's kernel spec manager, of whatever class:
    nb_conda_kernels' too) gives out tell each IPython kernel to load this module."""
    get_kernel_spec = specs.get_kernel_spec

    @functools.wraps(get_kernel_spec)
    def with_this_module(kernel_name, *args, **kwargs):
        spec = get_kernel_spec(kernel_name, *args, **kwargs)
        if any("ipykernel" in word for word in spec.argv[1:3]):  # python -m ipykernel[_launcher]
            spec.argv = [*spec.argv, "--IPKernelApp.extra_extensions=ipp_cluster"]
        return spec
    specs.get_kernel_spec = with_this_module


def _jupyter_server_extension_points():
    return [{"module": "ipp_cluster"}]


def _load_jupyter_server_extension(server):
    """The master's Jupyter loads this module as a server extension: its kernels load it."""
    load_into_kernels(server.kernel_spec_manager)


def load_ipython_extension(shell):
    """Loaded by the master's kernels (see `load_into_kernels`)."""
    try:
        install()
    except ImportError:  # a kernel without ipyparallel: nothing to do
        pass


def failed_by_restart(error):
    """Whether *error*, raised by a result, says that the task was lost in a controller
    restart (so that submitting it again is safe)."""
    return getattr(error, "ename", None) == "ControllerRestarted"
