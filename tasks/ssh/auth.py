"""
Say which keys an SSH login offered, for the message of a failed authentication.

paramiko says only ``Authentication failed.``; a user needs the account and the
keys that were tried to know what to fix: the keys named with ``-i`` or
``IdentityFile`` (Fabric's ``key_filename``), those of an SSH agent, and the
default files paramiko looks for in ``~/.ssh``.
"""

import os

import paramiko

#: The files paramiko (5.x: no DSA) tries after the named keys and the agent's
#: (``look_for_keys``), in its order; ``~/ssh`` is its Windows folder. A test compares this
#: with what paramiko logs that it tried, so a new paramiko cannot make it wrong unseen.
DEFAULT_KEYS = tuple(f"~/{folder}/id_{kind}" for kind in ("rsa", "ecdsa", "ed25519")
                     for folder in (".ssh", "ssh"))


def named_keys(connect_kwargs):
    """The key files named in *connect_kwargs* (Fabric's ``key_filename``: a path or a list)."""
    named = connect_kwargs.get("key_filename") or []
    return [named] if isinstance(named, str) else list(named)


def keys_tried(connect_kwargs):
    """The keys a paramiko login with *connect_kwargs* offers, in its order: the named
    files, the agent's (as a count), then the default files that exist."""
    keys = named_keys(connect_kwargs)
    if connect_kwargs.get("allow_agent", True) and os.environ.get("SSH_AUTH_SOCK"):
        try:
            count = len(paramiko.Agent().get_keys())
        except Exception:  # an agent that does not answer offers nothing
            count = 0
        if count:
            keys.append(f"{count} from the SSH agent")
    if connect_kwargs.get("look_for_keys", True):
        keys += [path for path in DEFAULT_KEYS if os.path.isfile(os.path.expanduser(path))]
    return list(dict.fromkeys(keys))  # Fabric may name an -i key twice


def login(connection):
    """``user@host``, with ``:port`` when it is not 22, of a Fabric *connection*."""
    where = f"{connection.user}@{connection.host}"
    return where if connection.port == 22 else f"{where}:{connection.port}"


def explain(connection):
    """``auth failed: user@host[:port], keys tried: ...`` for *connection*, a Fabric `Connection`."""
    where = login(connection)
    keys = keys_tried(connection.connect_kwargs)
    tried = ", ".join(keys) if keys else "none (name one with fab -i KEY)"
    return f"auth failed: {where}, keys tried: {tried}"
