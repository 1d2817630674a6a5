"""
Expand Ansible's host ranges: ``node[01:28]``, ``rack[a:d]-node[1:4]``, ``n[0:20:5]``.

Pure functions. A range is ``[START:END]`` or ``[START:END:STEP]`` of numbers (a
START written with a leading zero pads every number to its width, as Ansible does;
an empty START is 0) or of single letters (a to z, then A to Z, as Ansible counts
them); several ranges in one name give every combination. A bracketed IPv6 address
(``[fe80::1]``) is not a range.
"""

import ipaddress
import itertools
import re
import string

#: The most hosts one line may make: a typo such as ``node[1:100000]`` is refused.
LIMIT = 10_000

_BRACKETS = re.compile(r"\[([^\]]*)\]")
_NUMBER, _LETTER = re.compile(r"^[0-9]+$"), re.compile(r"^[a-zA-Z]$")


class RangeError(ValueError):
    """A range that cannot be expanded; the message says which and why."""


def _is_ipv6(text):
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _values(pattern, text):
    """The values of one range's *text* (what is between the brackets), as ``(values,
    width)``: *values* a ``range`` of numbers (padded to *width* when it is not 0) or a
    string of letters. Nothing is built yet: ``n[1:1000000000]`` is counted, then refused.
    Read as Ansible reads it (``expand_hostname_range``): an empty START is 0, letters run
    a-z then A-Z; what Ansible refuses, or would silently make nothing of, is refused."""
    def bad(why):
        return RangeError(f"bad range [{text}] in {pattern!r}: {why}")
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise bad("expected [START:END] or [START:END:STEP], of numbers or single letters")
    start, end = parts[0] or "0", parts[1]
    step = parts[2] if len(parts) == 3 else "1"
    if not end:
        raise bad("its end is missing")
    if not _NUMBER.match(step) or int(step) < 1:
        raise bad("its step must be a whole number of at least 1")
    if _NUMBER.match(start) and _NUMBER.match(end):
        first, last = int(start), int(end)
        width = len(start) if len(start) > 1 and start.startswith("0") else 0
        if width and len(end) != width:
            raise bad(f"a start padded with zeros needs an end of its width ({width} digits),"
                      " as Ansible requires")
        values = range(first, last + 1, int(step))
    elif _LETTER.match(start) and _LETTER.match(end):
        first, last = string.ascii_letters.index(start), string.ascii_letters.index(end)
        values, width = string.ascii_letters[first:last + 1:int(step)], 0
    else:
        raise bad("expected [START:END] or [START:END:STEP], of numbers or single letters")
    if first > last:
        raise bad("its start is after its end")
    return values, width


def _text(value, width):
    return str(value).zfill(width)


def expand(pattern, limit=LIMIT):
    """
    The names *pattern* stands for, in order (itself when it has no range).

    :raises RangeError: for a malformed or reversed range, or more than *limit* names.
    """
    pieces, ranges, position = [], [], 0
    for match in _BRACKETS.finditer(pattern):
        if _is_ipv6(match[1]):
            continue
        pieces.append(pattern[position:match.start()])
        ranges.append(_values(pattern, match[1]))
        position = match.end()
    if not ranges:
        return [pattern]
    pieces.append(pattern[position:])
    count = 1
    for values, _ in ranges:
        count *= len(values)
    if count > limit:
        raise RangeError(f"{pattern!r} makes {count} hosts; at most {limit} in one line")
    names = []
    texts = [[_text(value, width) for value in values] for values, width in ranges]
    for combination in itertools.product(*texts):
        name = pieces[0]
        for value, piece in zip(combination, pieces[1:]):
            name += value + piece
        names.append(name)
    return names
