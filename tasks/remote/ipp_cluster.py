"""
A client of the cluster that a controller restart does not leave waiting.

Every Python of the cluster's environment loads this module at its start, by its path
and as ``_ipp_cluster_hook`` (the name ``ipp_cluster`` stays free), from the
``ipp_cluster.pth`` that ``cluster.install`` (``tasks/remote/install_env.sh``) and
``install.sh`` put beside it in the environment's site-packages; the master's Jupyter
loads it as a server extension (``tasks/remote/start_master.sh`` puts it on its
``PYTHONPATH``), and every IPython kernel there loads it too, whatever its environment
(see `load_into_kernels`); where two copies are loaded (the environment's, perhaps
older, and the kernel's), the last one loaded makes the client. Then, once ipyparallel
is imported (`install_when_imported`: nothing is done, nor imported, in a Python that
never imports it), a script's or a notebook's plain::

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

#: The ipyparallel releases whose controller ``controller.py`` restores (its scheduler's
#: internals): with another, ipyparallel's own client is left as it is.
KNOWN_MAJORS = (9,)

#: The config file that each IPython kernel of the master's Jupyter loads (beside this one).
KERNEL_START = "ipp_cluster_kernel.py"


@functools.lru_cache(maxsize=None)
def _lasting_context_class():
    """`LastingContext`, made when first needed: ZeroMQ is imported by a client, not here."""
    import uuid

    import zmq

    class LastingContext(zmq.Context):
        """A ZeroMQ context whose request sockets keep one routing id for good."""

        def socket(self, socket_type, *args, **kwargs):
            socket = super().socket(socket_type, *args, **kwargs)
            if socket_type == zmq.DEALER:
                socket.routing_id = f"ipp-cluster-{uuid.uuid4().hex}".encode()
            return socket
    return LastingContext


_context = None, None  # this process's LastingContext, and the pid that made it


def lasting_context():
    """This process's `LastingContext` (one for all its clients, as ipyparallel shares
    ``zmq.Context.instance()``; a forked child makes its own)."""
    global _context
    context, pid = _context
    if context is None or context.closed or pid != os.getpid():
        _context = context, pid = _lasting_context_class()(), os.getpid()
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
        if original.__globals__ is globals():
            return True
        original = original.__wrapped__  # another copy's (the environment's hook): this one's instead
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


def _install_or_say():
    """`install`, or one line on stderr that says why not (never an error in an import)."""
    try:
        install()
    except Exception as error:  # noqa: BLE001 - an import of ipyparallel must not fail here
        print(f"ipp_cluster: ipp.Client() is ipyparallel's own: {error!r}", file=sys.stderr)


class _WhenImported:
    """
    A finder first on ``sys.meta_path`` that finds nothing itself: asked for ipyparallel
    (once, at its first import), it has the finders after it find the module, and makes
    the loader run `install` once the module has run. Any other name costs a comparison.
    """

    ipp_cluster = True  # one of ours, of whatever copy (see `install_when_imported`)

    def __init__(self):
        self.finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "ipyparallel" or self.finding:
            return None
        import importlib.util

        self.finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module  # this module's own loader: one per spec

        def exec_module(module):
            run(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _install_or_say()
        spec.loader.exec_module = exec_module
        return spec


def install_when_imported():
    """`install` now if ipyparallel was imported, else at its first import (a finder on
    ``sys.meta_path``, which replaces that of another copy of this module): what each
    Python of the cluster's environment runs at its start (``ipp_cluster.pth``), and each
    kernel of the master's Jupyter (`load_into_kernels`)."""
    if "ipyparallel" in sys.modules:
        _install_or_say()
        return
    ours = [finder for finder in sys.meta_path if getattr(finder, "ipp_cluster", False)]
    if not any(isinstance(finder, _WhenImported) for finder in ours):
        for finder in ours:
            sys.meta_path.remove(finder)
        sys.meta_path.insert(0, _WhenImported())


def load_into_kernels(specs):
    """
    Make the kernel specs that *specs* (Jupyter's kernel spec manager, of whatever class:
    nb_conda_kernels' too) gives out tell each IPython kernel to load `KERNEL_START` as an
    extra config file (``--config=``, named by its absolute path): that file loads this
    module from this folder. Not by name (an IPython extension): a kernel's working folder
    is on its ``sys.path`` (first of all where its kernel spec sets a PYTHONPATH of its
    own), and an ``ipp_cluster.py`` that someone put in a shared notebook folder would run
    in every kernel opened there. Nor as ``--IPKernelApp.exec_files=``: given on the
    command line, it replaces the files that a user's or a site's config names there. An
    extra config file is loaded after the kernel's own and changes none of their
    settings; a kernel spec that names one itself (its own ``--config``) has it replaced.
    """
    get_kernel_spec = specs.get_kernel_spec
    start = os.path.join(os.path.dirname(os.path.abspath(__file__)), KERNEL_START)

    @functools.wraps(get_kernel_spec)
    def with_this_module(kernel_name, *args, **kwargs):
        spec = get_kernel_spec(kernel_name, *args, **kwargs)
        if any("ipykernel" in word for word in spec.argv[1:3]):  # python -m ipykernel[_launcher]
            spec.argv = [*spec.argv, f"--config={start}"]
        return spec
    specs.get_kernel_spec = with_this_module


def _jupyter_server_extension_points():
    return [{"module": "ipp_cluster"}]


def _load_jupyter_server_extension(server):
    """The master's Jupyter loads this module as a server extension: its kernels load it."""
    load_into_kernels(server.kernel_spec_manager)


def load_ipython_extension(shell):
    """``%load_ext ipp_cluster`` in a notebook of another Jupyter: as `install_when_imported`."""
    install_when_imported()


def failed_by_restart(error):
    """Whether *error*, raised by a result, says that the task was lost in a controller
    restart (so that submitting it again is safe)."""
    return getattr(error, "ename", None) == "ControllerRestarted"
