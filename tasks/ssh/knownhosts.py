"""
The user's ``known_hosts``, read as OpenSSH reads it and only ever appended to.

Pure functions and one file operation, nothing of paramiko's: `parse` turns a
file's text into `Entry` objects, skipping every line OpenSSH would skip (a
comment, a blank, a line it cannot read) instead of failing; `Entry.matches`
applies OpenSSH's rules for a host name (``host`` on port 22, ``[host]:port``
elsewhere; comma lists, ``*`` and ``?`` wildcards, ``!`` negation, hashed
``|1|salt|hash`` names); `line_for` writes a new host's line in OpenSSH's
format, hashed or not; `append` adds it under a lock that other processes
respect, leaving every other byte of the file as it was.
"""

import base64
import fcntl
import hashlib
import hmac
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

CERT_AUTHORITY, REVOKED = "@cert-authority", "@revoked"
_HASHED = "|1|"


@dataclass(frozen=True)
class Entry:
    """One readable line: its marker ("" for none), host field, key type and base64 key."""

    marker: str
    hosts: str
    keytype: str
    key: str

    def matches(self, name):
        """True when this line is about *name* (see `host_name`), as OpenSSH decides."""
        if self.hosts.startswith(_HASHED):
            return _hashed_match(self.hosts, name)
        return _pattern_match(self.hosts, name)


def host_name(hostname, port):
    """The name OpenSSH files a host under: ``host`` on port 22 (or none), else ``[host]:port``."""
    return hostname if port in (None, 22) else f"[{hostname}]:{port}"


def parse(text):
    """The readable lines of a known_hosts file's *text*, in order, as `Entry` objects."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if marker not in ("", CERT_AUTHORITY, REVOKED) or len(fields) < 3:
            continue
        hosts, keytype, key = fields[:3]
        if _is_key(keytype, key):
            entries.append(Entry(marker, hosts, keytype, key))
    return entries


def for_host(entries, name):
    """The entries that apply to *name*: ``(known, revoked)`` lists (certificate authorities aside)."""
    matching = [entry for entry in entries if entry.matches(name)]
    return ([e for e in matching if not e.marker],
            [e for e in matching if e.marker == REVOKED])


def line_for(name, keytype, key, hashed=False, salt=None):
    """The line OpenSSH would add for *name* (``host`` or ``[host]:port``), hashed if asked."""
    if hashed:
        salt = salt if salt is not None else os.urandom(20)
        digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        name = f"{_HASHED}{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    return f"{name} {keytype} {key}\n"


def read(path):
    """The entries of the file at *path*; none when it does not exist or cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as known:
            return parse(known.read())
    except OSError:
        return []


@contextmanager
def locked(path):
    """
    Hold an exclusive ``flock`` on the known_hosts file at *path* (created 0600 if missing).

    Yields a function that appends a line to it. The lock is on the file itself,
    so every process that takes it (another ``fab``, or another thread here)
    waits; OpenSSH takes none, and an append never disturbs its readers.
    """
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as known:
        fcntl.flock(known, fcntl.LOCK_EX)

        def append(line):
            end = known.seek(0, os.SEEK_END)
            if end:
                known.seek(end - 1)
                if known.read(1) != b"\n":  # the last line has no end: ours must not join it
                    line = "\n" + line
            known.write(line.encode())  # O_APPEND: at the end, whatever the position
            known.flush()
        yield append


def _is_key(keytype, text):
    """True when *text* is base64 of a key blob of *keytype* (which starts with its type's name)."""
    try:
        blob = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return blob[4:4 + int.from_bytes(blob[:4], "big")] == keytype.encode()


def _hashed_match(field, name):
    try:
        salt, digest = (base64.b64decode(part, validate=True) for part in field[3:].split("|"))
    except ValueError:
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def _pattern_match(field, name):
    """OpenSSH's ``match_hostname``: any pattern matches and no negated one does."""
    found = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        if _wildcard(pattern.lstrip("!")).fullmatch(name.lower()):
            if negated:
                return False
            found = True
    return found


def _wildcard(pattern):
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts), re.DOTALL)
