"""
Messages the controller refused, said in its log by their reason alone and at most once per
`PERIOD` s: a peer without the key can send refused messages at network speed, and each
one's bytes (or a line per message) would fill the controller's log, which is the screen
session's log on the user's disk. What a peer sent is never written: a reason is one of
the caller's own fixed words, and the first refusal is said at once, the others counted
and said together a period later.

``controller.py`` and ``host_inbox.py`` use it, in the controller's own loop, with `signed`.
ipyparallel's own hub logs some messages it cannot take, one error each, with their bytes
(``Monitor message without topic: %r``, from any peer that reaches the engines' IOPub
port), and its heart monitor a warning per pong it does not expect, from anyone:
`cap_log_records` cuts every record of the controller's processes to `LONGEST` characters,
and `Throttle` lets `BURST` warnings or errors of one kind a period into the log of each of
them, but always the lines fab reads there (`KEPT`).
"""

import hmac
import logging
import re
import time

PERIOD = 60.0  # seconds between two lines at most
LONGEST = 1000  # characters of one log record's message, and of its traceback, at most
BURST = 10  # warnings or errors of one kind (their text before its values) logged per period
#: The beginnings of the lines fab reads in the controller's log (``ipp_screens.PURGED``),
#: each of a hub's warning: never held back, hundreds may come at once.
KEPT = ("registration::purging stalled registration ",)  # ends where its values begin
#: A record's kind: its text up to the first value put in (``%``, a digit, a quote, a
#: bracket...), as far as an f-string lets one tell.
_KIND = re.compile(r"[A-Za-z_:;,.?!() -]{0,60}")


def refusal(session, frames):
    """Why *frames* (a message after its routing ids) are refused, before anything of them
    is read: ``unreadable``, ``bad signature``, ``sent again`` (a signature its session has
    seen, which ipyparallel's handler would log with the message's bytes); None if taken."""
    if len(frames) < 5:
        return "unreadable"
    if not signed(session, frames):
        return "bad signature"
    if session.auth is not None and bytes(getattr(frames[0], "bytes", frames[0])) in getattr(
            session, "digest_history", ()):
        return "sent again"
    return None


def signed(session, frames):
    """Whether *frames* (a message after its routing ids: signature, header, parent,
    metadata, content; bytes or `zmq.Frame`) bear *session*'s signature, checked as
    `Session.deserialize` checks it but without recording it (ipyparallel's own handler of
    the same message refuses a signature it has seen), and before anything of it is read."""
    if session.auth is None:  # ENCRYPT=yes: no key, Curve keeps others out
        return True
    frames = [getattr(frame, "bytes", frame) for frame in frames[:5]]
    return len(frames) == 5 and hmac.compare_digest(bytes(frames[0]), session.sign(frames[1:]))


class Refusals:
    """The refusals of *what* (``host inbox: reports``), told to *log* on *loop* (a tornado
    IOLoop): `add` counts one by its reason."""

    def __init__(self, log, loop, what, period=PERIOD):
        self.log, self.loop, self.what, self.period = log, loop, what, period
        self.counts, self.timer = {}, None

    def add(self, reason):
        """One refused message, for *reason* (fixed text of the caller's, never a peer's)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if self.timer is None:
            self.say()

    def say(self):
        """Say what was counted since the last line, if anything; then wait a period."""
        self.timer = None
        if self.counts:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.counts.items()))
            self.log.warning(f"{self.what} refused: {sum(self.counts.values())} ({reasons});"
                             f" said at most once per {self.period:g} s")
            self.counts = {}
            self.timer = self.loop.call_later(self.period, self.say)


def cap_log_records(longest=LONGEST):
    """Cut the message and the traceback of every log record made from now on in this
    process (and the processes it forks: the controller's schedulers) to *longest*
    characters, saying how many were cut."""
    make = logging.getLogRecordFactory()
    if getattr(make, "capped", False):
        return

    def cut(text):
        return text if len(text) <= longest else f"{text[:longest]}... ({len(text) - longest} characters cut)"

    def capped(*args, **kwargs):
        record = make(*args, **kwargs)
        try:
            record.kind = kind_of(record)  # for `Throttle`, before the values are put in
            record.msg, record.args = cut(record.getMessage()), ()
            if record.exc_info:
                record.exc_text = cut(logging.Formatter().formatException(record.exc_info))
        except Exception:  # noqa: BLE001 -- a record that cannot be formatted is left as it is
            pass
        return record
    capped.capped = True
    logging.setLogRecordFactory(capped)


def kind_of(record):
    """The kind of *record*: its level and its text up to its first value (`_KIND`)."""
    return (record.levelno, _KIND.match(str(record.msg))[0])


class Throttle(logging.Filter):
    """A filter of a logger that lets at most `BURST` warnings or errors of one kind (`kind_of`)
    through per `PERIOD`; the first let through after some were dropped says how many.
    Information and below pass, and the lines that fab reads (`KEPT`)."""

    def __init__(self, burst=BURST, period=PERIOD):
        super().__init__()
        self.burst, self.period, self.counts, self.since = burst, period, {}, time.monotonic()

    def filter(self, record):
        kind = getattr(record, "kind", None) or kind_of(record)
        if record.levelno < logging.WARNING or kind in [(logging.WARNING, kept) for kept in KEPT]:
            return True
        if time.monotonic() - self.since >= self.period:  # a new period: what was dropped is told
            self.since = time.monotonic()
            self.counts = {told: [0, dropped] for told, (_, dropped) in self.counts.items() if dropped}
        if kind not in self.counts and len(self.counts) >= 1000:  # texts made of a peer's values
            kind = None
        count = self.counts.setdefault(kind, [0, 0])
        if count[0] >= self.burst:
            count[1] += 1
            return False
        count[0] += 1
        if count[1]:
            record.msg, record.args = f"{record.getMessage()} ({count[1]} more like it not logged)", ()
            count[1] = 0
        return True


def throttle(log):
    """Put a `Throttle` on the logger *log*, once (None: a logger ipyparallel did not return)."""
    if log is not None and not any(isinstance(f, Throttle) for f in log.filters):
        log.addFilter(Throttle())
