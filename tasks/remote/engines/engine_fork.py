"""
How the supervisor (``supervisor.py``) starts an engine: forked from its own warm Python,
or, where that cannot be done, as a process of its own.

`Warm` imports what every engine imports (ipyparallel's engine, ipykernel, IPython) once,
freezes it for the garbage collector (so that the forks share those pages instead of
copying them as the collector touches them), and then starts each engine by forking: no
Python start and next to no import or file read per engine. The supervisor forks from a
process that has no ZeroMQ context and no thread. An engine's KernelNanny (ipyparallel's
process that interrupts a task on ``Client.send_signal`` and tells the hub at once that its
engine died) is asked of the supervisor on a pipe, instead of starting a Python of its own
(`Warm.serve`): the host nanny (``host_nanny.py``) serves it, or one is forked for it. That
replaces ``ipyparallel.engine.app.start_nanny``, an internal of ipyparallel 9: `warm_reason`
names why another version (or an ``ipengine`` of another Python) starts every engine as a
process instead (`Processes`).

In every child: its own process group (the supervisor ends an engine with what it
started), its log as stdout and stderr, stdin from /dev/null, the default signal handlers,
no file descriptor of the supervisor's but its own (below 65536), and a name
(``ipengine-N``, what ``ps`` and ``top`` show).
"""

import ctypes
import gc
import importlib
import os
import pickle
import shutil
import signal
import sys
import threading

from . import host_nanny

#: The majors of ipyparallel whose ``start_nanny`` and ``KernelNanny.main`` `Warm` replaces.
KNOWN_MAJORS = (9,)
#: What an engine of ipyparallel 9 imports by the time it registered (measured: 151
#: modules more than ipyparallel's engine app alone, debugpy's among them), imported once.
WARM_IMPORTS = ("ipyparallel.engine.app", "ipyparallel.engine.nanny", "ipyparallel.engine.kernel",
                "ipykernel.ipkernel", "ipykernel.debugger", "IPython", "IPython.core.completerlib",
                "IPython.extensions.storemagic", "tornado.queues", "tornado.platform.asyncio",
                "sqlite3", "xmlrpc.server", "http.server", "pydoc")
PR_SET_NAME = 15


def warm_reason(ipengine):
    """None when engines can fork from this Python; else why not, for the supervisor's log:
    another ipyparallel, or *ipengine* (the program fab would start) not this Python's."""
    try:
        import ipyparallel
    except ImportError as error:
        return f"this Python cannot import ipyparallel ({error})"
    major = ipyparallel.__version__.split(".")[0]
    if not major.isdigit() or int(major) not in KNOWN_MAJORS:
        return (f"ipyparallel {ipyparallel.__version__} is not a version the supervisor knows"
                f" ({', '.join(f'{m}.x' for m in KNOWN_MAJORS)})")
    ipengine = shutil.which(ipengine) or ipengine  # a bare name: from the PATH, as exec finds it
    try:
        with open(ipengine, "rb") as program:
            first = program.readline(4096)
    except OSError as error:
        return f"cannot read {ipengine} ({error.strerror})"
    interpreter = first[2:].decode(errors="replace").split()[:1] if first.startswith(b"#!") else []
    if not interpreter or not _this_python(interpreter[0]):
        return f"{ipengine} is not an ipengine of this Python ({sys.executable})"
    return None


def _this_python(path):
    """Whether *path* runs this Python with its packages: the same file in the same folder
    (the virtual environments of one Python are the same file in different folders)."""
    try:
        return (os.path.samefile(path, sys.executable)
                and os.path.samefile(os.path.dirname(path), os.path.dirname(sys.executable)))
    except OSError:
        return False


class Child:
    """A process the supervisor started: its pid (also its process group) and, for a
    forked engine, the pipes of its KernelNanny (``request``: read here; ``url``: the write
    end the KernelNanny will hold)."""

    def __init__(self, pid, request=None, url=None):
        self.pid, self.request, self.url = pid, request, url

    def close(self):
        """Let go of the pipes (the engine ended, or its KernelNanny was forked)."""
        for fd in (self.request, self.url):
            if fd is not None:
                os.close(fd)
        self.request = self.url = None


def _become(title, log, keep=(), session=False):
    """In a new child: a process group (with *session*: a session) of its own, *log* as
    stdout and stderr (None: the supervisor's), the default signal handlers, only the
    descriptors in *keep* beside 0, 1 and 2; *title* as its name."""
    os.setsid() if session else os.setpgid(0, 0)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    if log is not None:
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, title.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _fork(title, log, run, keep=(), session=False):
    """Fork a child that becomes *title* (see `_become`) and runs ``run()``; its pid."""
    pid = os.fork()
    if pid:
        if not session:
            try:  # here too: a signal to its group right after the fork must not be lost
                os.setpgid(pid, pid)
            except OSError:  # it did so first, or already ran exec
                pass
        return pid
    code = 1
    try:
        _become(title, log, keep, session)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # a line at a time, as on a tty
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        code = run()
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    except BaseException:  # noqa: B036 - the child must never return into the supervisor
        import traceback
        traceback.print_exc()
    finally:
        os._exit(code or 0)


class Processes:
    """Each engine a process of its own: ``ipengine`` executed, with its own KernelNanny."""

    def start(self, number, argv, env, log):
        """Start engine *number*: *argv* (``ipengine ...``) with *env*; a `Child`."""
        return Child(_fork(f"ipengine-{number}", log, lambda: os.execvpe(argv[0], argv, env)))

    def serve(self, child, log):
        """Nothing to serve: ipengine starts its own KernelNanny."""


class Warm:
    """Engines forked from this warm Python (see the module)."""

    def __init__(self, report=None):
        """Import `WARM_IMPORTS`; RuntimeError when that started a thread (a fork would
        copy it in an unknown state). Fork the host nanny, which sends *report* (see
        ``host_nanny.Keeper``)."""
        # debugpy's import warns of frozen modules on stderr, for a debugger nobody runs here
        os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        for name in WARM_IMPORTS:
            importlib.import_module(name)
        if threading.active_count() > 1 or len(os.listdir("/proc/self/task")) > 1:
            raise RuntimeError("importing the engine started a thread here: forks are unsafe")
        self.app = sys.modules["ipyparallel.engine.app"]
        self.kernel_nanny = sys.modules["ipyparallel.engine.nanny"]
        gc.freeze()
        #: The host nanny's keeper, forked now (no thread, no ZeroMQ context here yet);
        #: None where its `host_nanny.reason` says it cannot serve these engines.
        self.host = None
        if not host_nanny.reason(sys.modules["ipyparallel"].__version__, self.kernel_nanny):
            self.host = host_nanny.Keeper(_fork, report)

    def start(self, number, argv, env, log):
        """Fork engine *number* with *argv*'s options (``argv[0]``, ipengine, is not run)
        and *env*; a `Child` whose ``request`` pipe `serve` answers."""
        request, request_w = os.pipe()
        url_r, url = os.pipe()

        def engine():
            os.environ.clear()
            os.environ.update(env)
            self.app.start_nanny = lambda **kwargs: _ask_kernel_nanny(kwargs, request_w, url_r)
            sys.argv = list(argv)
            self.app.IPEngine.launch_instance(list(argv[1:]))
            return 0

        try:
            pid = _fork(f"ipengine-{number}", log, engine, keep=(request_w, url_r))
        except OSError:
            Child(None, request, url).close()
            raise
        finally:
            os.close(request_w)
            os.close(url_r)  # the engine holds the only read end: its end tells the KernelNanny
        return Child(pid, request, url)

    def serve(self, child, log):
        """Serve the KernelNanny *child* (an engine) asked for on its pipe: by the host
        nanny (which gets a copy of the URL pipe) where it runs, else forked for it alone
        (its pid); None when the engine ended before asking."""
        kwargs = _read_request(child.request)
        if kwargs is None or (self.host and self.host.channel):
            if kwargs is not None:
                self.host.serve(kwargs, os.dup(child.url), host_nanny.address(log[:-len(".log")]))
            child.close()
            return None
        url = child.url

        def kernel_nanny():  # a session of its own, as ipyparallel starts it: no signal of the engine's
            kwargs["pipe"] = open(url, "w", buffering=1)
            self.kernel_nanny.KernelNanny.main(**kwargs)
            return 0

        number = kwargs.get("engine_id", "")
        pid = _fork(f"ipp-nanny-{number}", log, kernel_nanny, keep=(url,), session=True)
        child.close()
        return pid


def _ask_kernel_nanny(kwargs, request, url):
    """In a forked engine, for ``start_nanny``: send *kwargs* to the supervisor, and return
    the URL its KernelNanny writes (and None where ipyparallel keeps the nanny's Popen)."""
    kwargs["pid"] = os.getpid()
    data = pickle.dumps(kwargs)
    os.write(request, len(data).to_bytes(4, "big") + data)
    os.close(request)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(url, 4096)
        if not chunk:
            raise RuntimeError("the supervisor did not start this engine's KernelNanny")
        line += chunk
    return line.decode().strip(), None  # *url* stays open: its end tells the KernelNanny ours


def _read_request(fd):
    """The kwargs an engine sent on *fd*, or None when it ended first."""
    data = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
        if len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:4], "big"):
            break
    if len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        return None
    return pickle.loads(data[4:4 + int.from_bytes(data[:4], "big")])
