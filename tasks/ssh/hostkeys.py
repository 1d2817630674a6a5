"""
Check SSH host keys against the user's ``known_hosts``, as OpenSSH does.

Fabric accepts any host key and never reads ``known_hosts``. Here each
connection is given, before it connects, the keys on record for its host
(`tasks.ssh.knownhosts` reads the files as OpenSSH does): paramiko then asks the
host for that key type first and refuses a different key
(`BadHostKeyException`). A host without a usable key on record goes to the
policy: a key marked ``@revoked`` is refused; with ``HOST_KEY_CHECKING=accept-new``
the key is appended to the user's file (OpenSSH's ``StrictHostKeyChecking
accept-new``), with ``strict`` the host is refused.
"""

import base64
import os
import shlex

from paramiko import MissingHostKeyPolicy, PKey
from paramiko.ssh_exception import BadHostKeyException, SSHException

from . import knownhosts

#: Read as OpenSSH reads its GlobalKnownHostsFile: trusted, never written.
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class HostKeyRefused(SSHException):
    """A host key that must not be trusted: revoked, or unknown while checking is strict."""


def apply(connection, settings):
    """Make the Fabric *connection* check its host's key as *settings* and ``ssh_config`` say."""
    name = knownhosts.host_name(connection.host, connection.port)
    path = os.path.expanduser(settings.known_hosts)
    known, revoked = knownhosts.for_host(_entries(path), name)
    revoked_keys = {entry.key for entry in revoked}
    for entry in known:
        key = _paramiko_key(entry)
        if key is not None and entry.key not in revoked_keys:
            connection.client.get_host_keys().add(name, entry.keytype, key)
    hashed = str(connection.ssh_config.get("hashknownhosts", "no")).lower() == "yes"
    connection.client.set_missing_host_key_policy(
        _Policy(path, settings.host_key_checking == "accept-new", hashed))


def explain(error, settings, connection):
    """What a host-key refusal means and what to do about it, for a task's error line."""
    if isinstance(error, BadHostKeyException):
        name = knownhosts.host_name(connection.host, connection.port)
        return (f"REFUSED: the host key of {name} has changed (a man in the middle, or a"
                f" reinstalled host); if you know why, remove the old key with:"
                f" ssh-keygen -f {settings.known_hosts} -R {shlex.quote(name)}")
    return str(error)


class _Policy(MissingHostKeyPolicy):
    """For a host with no usable key on record: refuse a revoked key, then add or refuse."""

    def __init__(self, path, accept_new, hashed):
        self.path, self.accept_new, self.hashed = path, accept_new, hashed

    def missing_host_key(self, client, hostname, key):
        if not self.accept_new:  # never writes the file, so no lock
            if self._judge(hostname, key, _entries(self.path)):
                return
            raise HostKeyRefused(
                f"host key of {hostname} is not in {self.path} and HOST_KEY_CHECKING=strict;"
                f" add it with: ssh-keyscan {_keyscan_args(hostname)} >> {self.path}")
        with knownhosts.locked(self.path) as append:
            # Another fab (or thread) may have added it since: look again, under the lock.
            if not self._judge(hostname, key, _entries(self.path)):
                append(knownhosts.line_for(hostname, key.get_name(), key.get_base64(), self.hashed))

    def _judge(self, hostname, key, entries):
        """True when *key* is on record for *hostname*; raises if it must be refused."""
        known, revoked = knownhosts.for_host(entries, hostname)
        blob = key.asbytes()
        if any(_blob(entry) == blob for entry in revoked):
            raise HostKeyRefused(
                f"REFUSED: the host key of {hostname} is marked @revoked in {self.path}: it must"
                " never be trusted again; ask the host's administrator for its new key")
        if any(_blob(entry) == blob for entry in known):
            return True
        if any(entry.keytype == key.get_name() for entry in known):
            raise BadHostKeyException(hostname, key, _paramiko_key(known[0]) or key)
        return False


def _entries(path):
    return knownhosts.read(path) + knownhosts.read(GLOBAL_KNOWN_HOSTS)


def _blob(entry):
    return base64.b64decode(entry.key)


def _paramiko_key(entry):
    """The paramiko key of a line, or None for a key type paramiko does not know."""
    try:
        return PKey.from_type_string(entry.keytype, _blob(entry))
    except Exception:  # an unknown type (sk-..., certificates) or damaged key data
        return None


def _keyscan_args(name):
    if name.startswith("["):
        host, port = name[1:].split("]:")
        return f"-p {port} {host}"
    return name
