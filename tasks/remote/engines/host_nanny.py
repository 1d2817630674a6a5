"""
One KernelNanny process for all of a host's forked engines: the host nanny.

ipyparallel gives each engine a KernelNanny (a process, about 12 MiB) that relays its control
channel (``abort``...), signals it on ``Client.send_signal``, and tells the hub at once that
it ended, not after missed heartbeats. Here one process does so for all the supervisor's
engines: forked once from its warm Python by `Keeper` (only the host nanny has a ZeroMQ
context and threads), it runs an `EngineNanny` (ipyparallel's ``KernelNanny``, its handlers
kept) per engine in one loop (`Host`).

For each engine that registered (``engine_fork._ask_kernel_nanny``), the supervisor sends
the host nanny, on a Unix socket pair, the engine's arguments to ``start_nanny`` and the write
end of the pipe whose read end only the engine holds: the host nanny writes into it the URL
the engine's control socket connects to, and learns of the engine's end when that read end
closes or when the supervisor says it reaped the engine, whichever comes first; it then tells
the hub, and closes that engine's sockets only. The URL is a Unix socket in the (private) run
directory, so that a host nanny started again after a crash (the supervisor reaps it, starts
it again and sends it every engine it served) binds the same address, and the engines, whose
sockets reconnect, run on, served again; where that path is too long for a Unix socket, a TCP
port of 127.0.0.1, which a new host nanny cannot take again: such engines are renewed. Once
the supervisor's socket closes (its stop, or its end) it ends with its last engine. Its loop
sends the host's report too (``host_report.py``). It relies on internals of ipyparallel 9
(`KNOWN_MAJORS`: ``KernelNanny``'s handlers, `USED`, and ``start_nanny``'s arguments); with
another, `reason` says why, and each engine gets a KernelNanny of its own, as before.
"""

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import resource
import signal
import socket
import sys

from ..shared import nanny
from . import host_report

#: The majors of ipyparallel whose KernelNanny `EngineNanny` adapts, and what it uses of it.
KNOWN_MAJORS = (9,)
USED = ("dispatch_control", "dispatch_parent", "signal_request", "notify_exit")
ARGUMENTS = ("pid", "engine_id", "control_url", "registration_url", "identity", "curve_serverkey",
             "curve_publickey", "curve_secretkey", "config")
MAX_PATH = 100  # bytes of a Unix socket's path (at most 107 on Linux), with room


def reason(version, kernel_nanny):
    """None when the host nanny can serve engines of ipyparallel *version*, whose module
    ``ipyparallel.engine.nanny`` is *kernel_nanny*; else why not."""
    known = version.split(".")[0] in map(str, KNOWN_MAJORS)
    if not known or not all(hasattr(getattr(kernel_nanny, "KernelNanny", None), n) for n in USED):
        return f"ipyparallel {version}'s KernelNanny is not one the host nanny knows"
    return None


def address(stem):
    """Where the engine whose files begin with *stem* finds its control relay."""
    path = f"{stem}.control"
    return f"ipc://{path}" if len(os.fsencode(path)) <= MAX_PATH else "tcp://127.0.0.1"


class Keeper:
    """In the supervisor: forks the host nanny with *fork* (``engine_fork._fork``; *report*:
    see `Host`), hands it each engine, and starts it again when it ends (`reaped`)."""

    def __init__(self, fork, report=None):
        self.fork, self.report, self.pid, self.channel = fork, report, None, None
        self.served = {}  # engine pid: (start_nanny's arguments, the pipe's write end, address)
        self.restarts = nanny.Restarts("the host nanny")
        self.stopping = False
        self.start()

    def start(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.pid = self.fork("ipp-nanny", None, lambda: Host(theirs.fileno(), self.report).run(),
                                 keep=(theirs.fileno(),), session=True)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(5.0)  # a host nanny that reads nothing for so long is stuck: killed
        self.channel = ours

    def serve(self, kwargs, pipe, where):
        """Have the host nanny serve the engine that asked with *kwargs*: bind *where*, write
        the URL into *pipe* (kept open here: a new host nanny writes it again), watch it."""
        self.served[kwargs["pid"]] = (kwargs, pipe, where)
        self.send(("serve", kwargs, where), pipe)

    def ended(self, pid):
        """The engine *pid* ended (it is reaped next): the host nanny tells the hub now."""
        served = self.served.pop(pid, None)
        if served:
            os.close(served[1])
            self.send(("ended", pid))

    def send(self, message, fd=None):
        if self.channel is None:
            return
        try:
            socket.send_fds(self.channel, [pickle.dumps(message)], [] if fd is None else [fd])
        except OSError as error:  # it ended (reaped soon), or is stuck: it starts again
            print(nanny.line(f"the host nanny does not read ({error}): ending it"), flush=True)
            os.kill(self.pid, signal.SIGKILL)

    def reaped(self, pid, code, now):
        """Whether *pid* was the host nanny's: if so, unless stopping, start it again and
        have it serve the engines again; those it cannot (a TCP address, or when it ended
        too often: it is given up on, and new engines get a KernelNanny each), listed."""
        if pid != self.pid:
            return None
        self.pid = None
        self.stop(False)
        if self.stopping:
            return []
        why, again = nanny.describe(code), self.restarts.crashed(now) is not None
        print(nanny.line(self.restarts.restart_line(why, 0) if again else
                         self.restarts.give_up_line(why) + "; each engine gets a KernelNanny"), flush=True)
        try:
            again = again and self.start() is None
        except OSError:  # no process left to the user
            again = False
        lost = [pid for pid, (_, _, where) in self.served.items() if not (again and where.startswith("ipc://"))]
        for engine in lost:
            os.close(self.served.pop(engine)[1])
        for kwargs, pipe, where in self.served.values():
            self.send(("serve", kwargs, where), pipe)
        return lost

    def stop(self, stopping=True):
        """No engine more: the host nanny ends once those it serves have."""
        self.stopping = self.stopping or stopping
        if self.channel is not None:
            self.channel.close()
            self.channel = None


class Host:
    """In the host nanny: the loop, the ZeroMQ context, and an `EngineNanny` per engine,
    created on the supervisor's messages read from *fd* (see the module); with *report*
    (the state file, the engine connection file, the label), the host's report too."""

    def __init__(self, fd, report=None):
        import zmq
        from ipyparallel import util
        from tornado.ioloop import IOLoop, PeriodicCallback
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as ipyparallel's: a user's ^C is the engine's
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # about 6 files per engine
        util._disable_session_extract_dates()
        self.channel = socket.socket(fileno=fd)
        self.channel.setblocking(False)
        logging.basicConfig(format="%(asctime)s [ipp-nanny] %(message)s", level=logging.WARNING,
                            stream=sys.stderr, force=True)  # into the supervisor's output
        self.log = logging.getLogger("ipp-nanny")
        asyncio.set_event_loop(asyncio.new_event_loop())
        self.loop = IOLoop.current()
        self.context = zmq.Context.instance()  # the report's too
        self.context.set(zmq.MAX_SOCKETS, min(hard, 1 << 16))  # 1023 by default: 500 engines
        self.nannies, self.open = {}, True  # engine pid: its EngineNanny; the supervisor's socket open
        self.loop.add_handler(fd, self.read, IOLoop.READ)
        self.sender = report and host_report.Sender(report[1])  # host_report.py's, in this loop
        self.reports = PeriodicCallback(lambda: host_report.report(self.sender, report[0], report[2]),
                                        host_report.SEND * 1000)
        if report:
            self.reports.start()  # till the supervisor ends, as host_report.py's process

    def run(self):
        try:
            self.loop.start()
        finally:
            if self.sender:
                self.sender.close()
            self.context.term()  # after the last notices are sent (their linger)
        return 0

    def read(self, fd, events):
        EngineNanny = engine_nanny_class()
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, 1 << 20, 1)  # a message: at most 1 MiB
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:  # the supervisor stopped, or ended
                self.loop.remove_handler(fd)
                self.reports.stop()
                self.open = False
                return self.forget(None)
            message = pickle.loads(data)
            if message[0] == "serve":
                _, kwargs, where = message
                if kwargs["pid"] in self.nannies:
                    self.nannies[kwargs["pid"]].finish()
                served = self.nannies[kwargs["pid"]] = EngineNanny(self, kwargs, fds[0], where)
                try:
                    served.begin()
                except Exception:  # the engine is ended: it starts again (a crash, in its log)
                    self.log.exception(f"cannot serve engine {served.engine_id}: ending it")
                    served.finish()
                    with contextlib.suppress(Exception):
                        served.parent_process.kill()  # psutil's: the very process, or none
            elif message[1] in self.nannies:  # ended
                self.nannies[message[1]].finish()

    def forget(self, served):
        """*served* (an `EngineNanny`) finished; the loop ends with the last, once closed."""
        if served is not None and self.nannies.get(served.pid) is served:
            del self.nannies[served.pid]
        if not self.open and not self.nannies:
            self.loop.add_callback(self.loop.stop)


@functools.lru_cache(maxsize=None)
def engine_nanny_class():
    """`EngineNanny`: made at the host nanny's first engine (the supervisor imports this
    module, and ipyparallel's KernelNanny only when it forks engines)."""
    import psutil
    import zmq
    from ipyparallel.engine.nanny import KernelNanny
    from jupyter_client.session import Session
    from tornado.ioloop import IOLoop
    from zmq.eventloop.zmqstream import ZMQStream

    class EngineNanny(KernelNanny):
        """ipyparallel's KernelNanny for one engine, in the host nanny's loop and context:
        its handlers (the relay, ``signal_request``, ``notify_exit``) are KernelNanny's;
        it watches no thread, and its end (`finish`) closes its own sockets only."""

        def __init__(self, host, kwargs, pipe, where):  # noqa: D107 - KernelNanny's attributes, set here
            self.host, self.pipe, self.where = host, pipe, where
            for name in ARGUMENTS:
                setattr(self, name, kwargs[name])
            self.session = Session(config=self.config)
            self.log, self.loop, self.context = host.log, host.loop, host.context
            self.control_handlers = {"signal_request": self.signal_request}
            self._finish_called, self.control_stream, self.parent_stream = False, None, None
            try:
                self.parent_process = psutil.Process(self.pid)
            except psutil.Error:
                self.parent_process = None

        def begin(self):
            """Connect to the controller, bind the engine's relay at `where`, write its
            URL for the engine; then watch the engine's pipe."""
            if self.parent_process is None:
                return self.finish()
            control = self.context.socket(zmq.ROUTER)
            control.identity = self.identity
            util.connect(control, self.control_url, curve_serverkey=self.curve_serverkey)
            self.control_stream = ZMQStream(control, self.loop)
            self.control_stream.on_recv_stream(self.dispatch_control)
            parent = self.context.socket(zmq.DEALER)
            if self.curve_secretkey:
                parent.setsockopt(zmq.CURVE_SERVER, 1)
                parent.setsockopt(zmq.CURVE_SECRETKEY, self.curve_secretkey)
            if self.where.startswith("ipc://"):
                self.remove()  # the last host nanny's, if it crashed
                parent.bind(self.where)
                url = self.where
            else:
                url = f"{self.where}:{parent.bind_to_random_port(self.where)}"
            self.parent_stream = ZMQStream(parent, self.loop)
            self.parent_stream.on_recv_stream(self.dispatch_parent)
            try:
                os.write(self.pipe, f"{url}\n".encode())
            except OSError:  # the engine ended already
                return self.finish()
            self.loop.add_handler(self.pipe, self.pipe_handler, IOLoop.READ | IOLoop.ERROR)

        def pipe_handler(self, fd, events):
            """The engine's end of the pipe closed: it ended."""
            self.finish()

        def finish(self):
            """Tell the hub that the engine ended; close its sockets and its pipe."""
            if self._finish_called:
                return
            self._finish_called = True
            self.loop.remove_handler(self.pipe)
            os.close(self.pipe)
            self.notify_exit()
            for stream in filter(None, (self.control_stream, self.parent_stream)):
                stream.close(linger=0)
            self.remove()
            self.host.forget(self)

        def remove(self):
            """Remove the Unix socket at `where`, if it is one."""
            with contextlib.suppress(OSError):
                if self.where.startswith("ipc://"):
                    os.remove(self.where[len("ipc://"):])

    from ipyparallel import util
    return EngineNanny
