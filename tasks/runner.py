"""
Run commands on many hosts at once and say, for each host, what happened.

`Fleet` is the one place that talks to hosts: it keeps one connection per host
for the life of a task (so that the steps of a task reuse them), runs each host's
own command through a Fabric `ThreadingGroup`, caps how many run at once, and
turns every outcome, including exceptions, into a `HostResult`. One bad host
never stops the others; it is named in its result.
"""

import errno
import io
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field

from fabric import Config, Connection, ThreadingGroup
from fabric.exceptions import GroupException
from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import BadHostKeyException, NoValidConnectionsError, SSHException

from . import hostkeys
from .facts import parse_facts

OK, FAILED, UNREACHABLE = "ok", "failed", "unreachable"


@dataclass
class HostResult:
    """What one command did on one host: ``state`` is ok, failed or unreachable."""

    host: object
    state: str
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    facts: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.state == OK


class _WholeText(io.StringIO):
    """
    Text for a command's stdin that invoke sends in one piece.

    invoke reads a stream that is not a terminal one byte at a time and sleeps
    10 ms after each read: 4 kB of notebooks took 40 s. Here every read returns
    all that is left, so the text goes in one write, then EOF.
    """

    def read(self, size=-1):
        return super().read()


class _HostConnection(Connection):
    """
    A `Connection` that runs its own host's command, inside the fleet's slots.

    `ThreadingGroup.run` hands every connection the same arguments; here the
    first one is a mapping from inventory host name to command, so that each
    host gets its own, and the shared semaphore caps concurrent sessions.
    """

    # Declared here so that setting them stays on the object: invoke's contexts turn
    # unknown attributes into (shared) config values.
    inventory_host = None
    slots = None

    def __init__(self, host, slots, **kwargs):
        super().__init__(host.hostname, user=host.user, port=host.port, **kwargs)
        self.inventory_host = host
        self.slots = slots

    def run(self, commands, **kwargs):
        command = commands[self.inventory_host.name]
        if isinstance(command, tuple):  # (command, text for its stdin)
            command, text = command
            kwargs["in_stream"] = _WholeText(text)
        with self.slots:
            return self._execute(command, **kwargs)

    def _execute(self, command, **kwargs):
        return super().run(command, **kwargs)

    def put(self, files, **kwargs):
        """Like `run`: *files* maps inventory host name to ``(local path, remote path)``."""
        with self.slots:
            return self._put(*files[self.inventory_host.name])

    def _put(self, local, remote):
        return super().put(local, remote)


class _LocalConnection(_HostConnection):
    """The inventory's ``localhost``: commands run locally, without SSH."""

    def _execute(self, command, **kwargs):
        return self.local(command, **kwargs)

    def _put(self, local, remote):
        target = os.path.join(os.path.expanduser("~"), remote)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(local, target)

    def close(self):
        pass


def _unreachable(error):
    """True when *error* means the host could not be reached (rather than a command failed)."""
    if isinstance(error, (SSHException, EOFError, socket.timeout, socket.gaierror, ConnectionError,
                          NoValidConnectionsError)):
        return True
    return isinstance(error, OSError) and error.errno in (
        errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN)


def _outcome(host, value, settings):
    """Turn a Fabric result or exception into a `HostResult`."""
    if isinstance(value, (BadHostKeyException, hostkeys.UnknownHost)):
        return HostResult(host, UNREACHABLE, reason=hostkeys.explain(value, settings))
    if isinstance(value, CommandTimedOut):
        return HostResult(host, FAILED, reason=f"timed out after {value.timeout} s")
    if _unreachable(value):
        text = str(value) or type(value).__name__
        return HostResult(host, UNREACHABLE, reason=f"unreachable: {text}")
    if isinstance(value, Exception):
        return HostResult(host, FAILED, reason=f"{type(value).__name__}: {value}")
    if not hasattr(value, "exited"):  # a transfer, which raises when it fails
        return HostResult(host, OK)
    stdout, stderr = value.stdout, value.stderr
    if value.ok:
        return HostResult(host, OK, stdout, stderr, facts=parse_facts(stdout))
    last = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1]
    return HostResult(host, FAILED, stdout, stderr, reason=f"exit {value.exited}: {last}",
                      facts=parse_facts(stdout))


class Fleet:
    """
    Connections to the hosts of an inventory, and a way to run commands on them.

    Use it as a context manager so that connections are closed at the end.
    """

    def __init__(self, settings, config=None):
        self.settings = settings
        self.config = config if isinstance(config, Config) else Config()
        self.slots = threading.BoundedSemaphore(settings.parallel)
        self.connections = {}

    def connection(self, host):
        """The (reused) connection to *host*, an inventory `Host`."""
        if host.name not in self.connections:
            timeout = self.config.timeouts.connect or self.settings.connect_timeout
            # Constructor connect_kwargs replace the config's: merge to keep -i and friends.
            connect_kwargs = dict(self.config.connect_kwargs,
                                  banner_timeout=timeout, auth_timeout=timeout)
            kind = _LocalConnection if host.is_local else _HostConnection
            connection = kind(host, self.slots, config=self.config, connect_timeout=timeout,
                              connect_kwargs=connect_kwargs)
            hostkeys.apply(connection.client, self.settings)
            self.connections[host.name] = connection
        return self.connections[host.name]

    def run(self, commands, timeout, out_stream=None):
        """
        Run ``commands[host]`` on each host, all at once, within *timeout* seconds.

        :param commands: a dict from inventory `Host` to a command line, or to a
            ``(command line, text)`` pair whose text goes to the command's stdin.
        :param out_stream: where stdout goes as it comes (it is captured anyway).
        :returns: a dict from inventory host name to `HostResult`.
        """
        return self._fan_out("run", commands, warn=True, in_stream=False, timeout=timeout,
                             hide="err" if out_stream else True, out_stream=out_stream)

    def put(self, files):
        """
        Upload ``files[host]``, a ``(local path, remote path)`` pair, to each host at once.

        A relative remote path is relative to the home directory.
        """
        return self._fan_out("put", files)

    def _fan_out(self, method, per_host, **kwargs):
        if not per_host:
            return {}
        by_name = {host.name: value for host, value in per_host.items()}
        group = ThreadingGroup.from_connections(self.connection(h) for h in per_host)
        try:
            results = getattr(group, method)(by_name, **kwargs)
        except GroupException as error:
            results = error.result
        return {cxn.inventory_host.name: _outcome(cxn.inventory_host, value, self.settings)
                for cxn, value in results.items()}

    def close(self):
        for connection in self.connections.values():
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
