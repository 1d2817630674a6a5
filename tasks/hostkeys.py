"""
Check SSH host keys against the user's ``known_hosts``, like OpenSSH does.

Fabric accepts any host key and never reads ``known_hosts``; here every
connection loads the file, a host whose key differs from the one on record is
refused (paramiko raises `BadHostKeyException`), and a host seen for the first
time is accepted and remembered (OpenSSH's ``StrictHostKeyChecking accept-new``)
or, with ``HOST_KEY_CHECKING=strict``, refused.
"""

import os
import threading

from paramiko import HostKeys, MissingHostKeyPolicy, RejectPolicy
from paramiko.ssh_exception import BadHostKeyException, SSHException

# Connections to new hosts are made from many threads at once: one writer at a time.
_file_lock = threading.Lock()


class AcceptNew(MissingHostKeyPolicy):
    """Accept the key of a host not yet in *path*, and add it to that file."""

    def __init__(self, path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        with _file_lock:
            known = HostKeys()
            if os.path.exists(self.path):
                known.load(self.path)
            known.add(hostname, key.get_name(), key)
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            known.save(self.path)
        client.get_host_keys().add(hostname, key.get_name(), key)


class UnknownHost(SSHException):
    """A host not in ``known_hosts`` while checking is strict."""


class _Strict(RejectPolicy):
    def __init__(self, path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        raise UnknownHost(f"host key of {hostname} is not in {self.path} and HOST_KEY_CHECKING=strict;"
                          f" add it with: ssh-keyscan {hostname} >> {self.path}")


def apply(client, settings):
    """Make the paramiko *client* check host keys as *settings* say."""
    path = os.path.expanduser(settings.known_hosts)
    if os.path.exists(path):
        client.load_system_host_keys(path)
    policy = AcceptNew if settings.host_key_checking == "accept-new" else _Strict
    client.set_missing_host_key_policy(policy(path))


def explain(error, settings):
    """A message saying what a host-key refusal means and what to do about it."""
    if isinstance(error, BadHostKeyException):
        return (f"REFUSED: the host key of {error.hostname} has changed (a man in the middle, or a"
                f" reinstalled host); if you know why, remove the old key with:"
                f" ssh-keygen -f {settings.known_hosts} -R {error.hostname}")
    return str(error)
