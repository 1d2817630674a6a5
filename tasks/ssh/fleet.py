"""
Run scripts on many hosts at once and say, for each host, what happened.

`Fleet` is the one place that talks to hosts. It keeps one Fabric `Connection`
per host for the life of a task, so that the steps of a task reuse it, and works
on at most ``PARALLEL`` hosts at once with as many worker threads (a pool: a
thousand hosts never mean a thousand threads). Each host's script goes on the
standard input of `tasks.commands.REMOTE_SHELL` through the connection's own
``run``; every outcome, exceptions included, becomes a `HostResult`. One bad
host never stops the others; it is named in its result.
"""

import errno
import io
import logging
import os
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    NoValidConnectionsError,
    SSHException,
)

from ..commands.script import REMOTE_SHELL
from ..commands.answers import parse_facts
from . import auth, hostkeys

OK, FAILED, UNREACHABLE, AUTH_FAILED = "ok", "failed", "unreachable", "auth failed"

# paramiko logs a traceback for every host that fails to connect (Python's last-resort
# handler prints it on stderr): each host's failure is in its result instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class HostResult:
    """What one script did on one host: ``state`` is ok, failed, unreachable or auth failed."""

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


class LocalConnection(Connection):
    """The inventory's ``localhost``: commands run here, without SSH; files are copied."""

    def run(self, command, **kwargs):
        return self.local(command, **kwargs)

    def put(self, local, remote=None, preserve_mode=True):
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


def _why_unreachable(error, connection):
    """What a user can act on, for an *error* of connecting through *connection*."""
    where = f"{connection.host}:{connection.port}"
    if isinstance(error, socket.gaierror):
        return (f"unknown host name {connection.host!r}: not in DNS, /etc/hosts or ~/.ssh/config;"
                " check the inventory's hosts file")
    if isinstance(error, NoValidConnectionsError):
        return f"nothing accepts connections on {where}: is sshd running there, on that port?"
    if isinstance(error, socket.timeout) and not isinstance(error, SSHException):
        return f"no answer from {where} within {connection.connect_timeout:g} s"
    text = str(error) or type(error).__name__
    if text == "No existing session" or "banner" in text:
        return f"{where} accepted the connection but sent no SSH greeting (is it an SSH server?)"
    return text


def outcome(host, connection, value, settings):
    """Turn what Fabric returned or raised on *host* (through *connection*) into a `HostResult`."""
    if isinstance(value, (BadHostKeyException, hostkeys.HostKeyRefused)):
        return HostResult(host, UNREACHABLE, reason=hostkeys.explain(value, settings, connection))
    if isinstance(value, AuthenticationException):
        return HostResult(host, AUTH_FAILED, reason=auth.explain(connection))
    if isinstance(value, CommandTimedOut):
        return HostResult(host, FAILED, reason=f"timed out after {value.timeout} s")
    if _unreachable(value):
        reason = f"unreachable: {_why_unreachable(value, connection)}"
        return HostResult(host, UNREACHABLE, reason=reason)
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
    Connections to the hosts of an inventory, and a way to run scripts on them.

    Use it as a context manager so that connections are closed at the end.
    """

    def __init__(self, settings, config=None):
        self.settings = settings
        self.config = config if isinstance(config, Config) else Config()
        self.connections = {}
        self.extras = []  # connections of `connection`'s *extra*

    def connection(self, host, extra=False):
        """The (reused) Fabric connection to *host*, an inventory `Host`; with *extra*, one more
        of its own (closed with the others), for a task that needs more channels than sshd
        allows one connection (``MaxSessions``)."""
        if extra:
            connection = self._new(host)
            self.extras.append(connection)
            return connection
        if host.name not in self.connections:
            self.connections[host.name] = self._new(host)
        return self.connections[host.name]

    def _new(self, host):
        timeout = self.config.timeouts.connect or self.settings.connect_timeout
        # Constructor connect_kwargs replace the config's: merge to keep -i and friends.
        connect_kwargs = dict(self.config.connect_kwargs,
                              banner_timeout=timeout, auth_timeout=timeout)
        if host.key:  # the inventory's ansible_ssh_private_key_file comes first
            connect_kwargs["key_filename"] = [os.path.expanduser(host.key),
                                              *auth.named_keys(connect_kwargs)]
        kind = LocalConnection if host.is_local else Connection
        # A job's node is reached through the login node (OpenSSH's ProxyJump), unless fab
        # runs there itself.
        gateway = {"gateway": self.connection(host.via)} if host.via and not host.via.is_local else {}
        connection = kind(host.hostname, user=host.user, port=host.port, config=self.config,
                          connect_timeout=timeout, connect_kwargs=connect_kwargs, **gateway)
        if not host.is_local:
            hostkeys.apply(connection, self.settings)
        return connection

    def run(self, scripts, timeout, out_stream=None):
        """
        Run ``scripts[host]`` (see `tasks.commands.script`) on each host, within *timeout* s.

        :param scripts: a dict from inventory `Host` to the script for its stdin.
        :param out_stream: where stdout goes as it comes (it is captured anyway).
        :returns: a dict from inventory host name to `HostResult`, in the order of *scripts*.
        """
        def run_one(connection, script):
            return connection.run(REMOTE_SHELL, in_stream=_WholeText(script), warn=True,
                                  timeout=timeout, hide="err" if out_stream else True,
                                  out_stream=out_stream)
        return self._fan_out(run_one, scripts)

    def put(self, files):
        """
        Upload ``files[host]``, a ``(local path, remote path)`` pair, to each host at once.

        A relative remote path is relative to the home directory.
        """
        return self._fan_out(lambda connection, pair: connection.put(*pair), files)

    def _fan_out(self, action, per_host):
        """Do ``action(connection, value)`` for each host, at most ``PARALLEL`` at once."""
        if not per_host:
            return {}
        # Past PARALLEL hosts, a connection is closed after its use: idle connections keep
        # a thread each (paramiko's transport), and threads must stay about PARALLEL.
        keep_open = len(per_host) <= self.settings.parallel

        connections = {host: self.connection(host) for host in per_host}
        gateways = {id(c.gateway): c.gateway for c in connections.values()
                    if isinstance(c.gateway, Connection)}
        failed = {}  # id of a gateway that cannot be opened -> why
        for key, gateway in gateways.items():  # a login node leading to a job's node: opened
            if not gateway.is_connected:       # here, once, not by two threads at once
                try:
                    gateway.open()
                except Exception as error:  # noqa: BLE001 (the hosts behind it fail with it)
                    failed[key] = error

        def one(host, connection, value):
            error = failed.get(id(connection)) or failed.get(id(connection.gateway))
            if error is not None:  # never opened again, by two threads at once
                return outcome(host, connection.gateway or connection, error, self.settings)
            try:
                result = action(connection, value)
            except Exception as error:  # every failure is this host's result, never the task's
                result = error
            if not keep_open and id(connection) not in gateways:  # others' sessions go through it
                connection.close()
            return outcome(host, connection, result, self.settings)

        workers = min(self.settings.parallel, len(per_host))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fleet") as pool:
            futures = {host.name: pool.submit(one, host, connections[host], value)
                       for host, value in per_host.items()}
        return {name: future.result() for name, future in futures.items()}

    def close(self):
        for connection in [*self.connections.values(), *self.extras]:
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
