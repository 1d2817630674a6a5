"""
The dashboard's task stream: the tasks of the last `WINDOW` s, as the engines themselves
tell them, kept in the master's Jupyter between two reads of the page. Pure: `Watcher`
(``dashboard/extension.py``) feeds it what it hears on the controller's IOPub relay.

Every engine says ``busy`` on IOPub when it takes a request and ``idle`` when it is done
with it, and sends the ``error`` of a request that raised, each under the request's
msg_id (ipykernel's own protocol): `began`, `failed` and `ended` here. So a task is seen
running from its first second to its last, however long it runs and however long ago it
was submitted, and nothing is asked of the hub or of an engine for it.

What the page gets (`bars`) is bounded whatever the rate of tasks: the tasks that ended
go into bins of `BIN` s per engine (and per host), each bin one bar, from the first
start to the last end of its tasks, with how many ended well or failed and the seconds
they kept the engine busy. A row holds at most ``WINDOW / BIN`` bars; from `MANY`
engines on, the page's rows are hosts.
"""

import collections
import datetime
import re

WINDOW = 300.0  # seconds of stream kept and shown
BIN = 1.5  # seconds of one bar of ended tasks: at most 200 bars per row
MANY = 50  # engines from which each host is one row (and one summary)
TRACEBACK = 20_000  # characters of a traceback kept
KEPT = 10_000  # failures of tasks not ended yet, and tasks of engines not placed yet, kept at most
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PLACE = re.compile(r", in ([\w.<>]+)(?:\(|$)", re.MULTILINE)  # "File x.py:3, in f(y)" (IPython 8)


class Row:
    """The ended tasks of one engine or host, by bin: ``{index: [start, end, ok, failed,
    busy seconds]}`` (times in seconds since the epoch)."""

    __slots__ = ("bins",)

    def __init__(self):
        self.bins = {}

    def add(self, start, end, ok):
        found = self.bins.get(int(end // BIN))
        if found is None:
            self.bins[int(end // BIN)] = [start, end, int(ok), int(not ok), end - start]
            return
        found[0], found[1] = min(found[0], start), max(found[1], end)
        found[2 if ok else 3] += 1
        found[4] += end - start

    def prune(self, oldest):
        for index in [i for i, bar in self.bins.items() if bar[1] < oldest]:
            del self.bins[index]

    def bars(self, now):
        """``[start, end, ok, failed, busy]``, times in seconds before *now* (negative; the
        start at most `WINDOW` s before)."""
        return [[round(max(b[0], now - WINDOW) - now, 2), round(min(b[1], now) - now, 2),
                 b[2], b[3], round(b[4], 2)] for _, b in sorted(self.bins.items())]


class TaskStream:
    """The stream (see the module). Engines are the hub's ids; `labels` says each one's
    host (`Watcher` sets it at each read: a task of an engine not known yet waits in
    `unplaced` for its host row). Times are this machine's, when a message was taken;
    a task's length is its engine's own measure (*stamp*: the message's date), so that
    neither the hosts' clocks nor the listener's batches shift or stretch a bar."""

    def __init__(self):
        self.labels = {}  # engine: its host
        self.running = {}  # engine: [msg_id, since, stamp]
        self.errors = {}  # msg_id: its failure, until its task ends
        self.engines, self.hosts = {}, {}  # engine or host: its Row
        self.unplaced = collections.deque(maxlen=KEPT)  # (engine, start, end, ok), its host not known yet
        self.failures = []  # failures ended since the last `take_failures`
        self.idle = {}  # engine: reads in a row at which the hub said it had no task
        self.closed = {}  # msg_id: when it was ended without its idle (one that comes is skipped)

    def began(self, engine, msg_id, when, stamp=None):
        previous = self.running.get(engine)
        if previous and previous[0] != msg_id:  # its idle was lost: it ended by now
            self.ended(engine, previous[0], when)
        self.running[engine] = [msg_id, when, stamp]
        self.idle.pop(engine, None)

    def failed(self, engine, msg_id, content, when):
        text = ANSI.sub("", "\n".join(str(line) for line in content.get("traceback") or []))
        places = PLACE.findall(text)
        if len(self.errors) >= KEPT:  # the oldest first: its task's end never came
            del self.errors[next(iter(self.errors))]
        self.errors[msg_id] = {
            "msg_id": msg_id, "time": when, "engine": engine, "host": self.labels.get(engine, "?"),
            "ename": str(content.get("ename") or "Error")[:200],
            "evalue": str(content.get("evalue") or "")[:2000],
            "place": places[-1] if places else "", "traceback": text[-TRACEBACK:]}

    def ended(self, engine, msg_id, when, stamp=None):
        if self.closed.pop(msg_id, None) is not None:
            return  # ended already (see `settle`)
        began = self.running.get(engine)
        start = when
        if began and began[0] == msg_id:
            del self.running[engine]
            start = began[1]
            if stamp is not None and began[2] is not None:
                start = when - max(0.0, stamp - began[2])  # the engine's measure of its length
        start = min(start, when)
        error = self.errors.pop(msg_id, None)
        self.engines.setdefault(engine, Row()).add(start, when, error is None)
        if engine in self.labels:
            self.hosts.setdefault(self.labels[engine], Row()).add(start, when, error is None)
        else:
            self.unplaced.append((engine, start, when, error is None))
        if error:
            self.failures.append(error)

    def place(self, labels):
        """Take *labels* (engine: host) and put the tasks of engines now known in their hosts' rows."""
        self.labels = labels
        waiting, self.unplaced = self.unplaced, collections.deque(maxlen=KEPT)
        for engine, start, end, ok in waiting:
            if engine in labels:
                self.hosts.setdefault(labels[engine], Row()).add(start, end, ok)
            else:
                self.unplaced.append((engine, start, end, ok))

    def settle(self, waiting, now):
        """Compare with the hub (*waiting*: engine id: its tasks in flight): a task running on
        an engine that has none, at two reads in a row, has ended, its idle lost (a
        controller restart drops what its IOPub relay held); one on an engine gone failed:
        the hub ends it with an ``EngineError`` for its client."""
        for engine in list(self.running):
            msg_id = self.running[engine][0]
            if engine not in waiting:
                self.failed(engine, msg_id, {"ename": "EngineError", "evalue":
                            f"engine {engine} went away while it ran this task"}, now)
                self.ended(engine, msg_id, now)
            elif waiting[engine]:
                self.idle.pop(engine, None)
            elif self.idle.setdefault(engine, 0) >= 1:
                self.ended(engine, msg_id, now)
                self.closed[msg_id] = now
            else:
                self.idle[engine] += 1
        for msg_id in [m for m, when in self.closed.items() if when < now - 60]:
            del self.closed[msg_id]

    def forget_running(self):
        """A new controller: the tasks of the last one are not this one's."""
        self.running, self.errors, self.idle = {}, {}, {}

    def take_failures(self):
        taken, self.failures = self.failures, []
        return taken

    def prune(self, now):
        for rows in (self.engines, self.hosts):
            for key, row in list(rows.items()):
                row.prune(now - WINDOW)
                if not row.bins:
                    del rows[key]

    def bars(self, now, by_host, keys=()):
        """The page's stream: ``{"rows": [{"key", "bars", "running"}], "span", "by_host"}``:
        one row per engine (or per host, *by_host*), its bars (see `Row.bars`) and its tasks
        running as ``[since, msg_id, seconds running]`` (*since*: seconds before *now*, at
        most `WINDOW`). ``span``: seconds from the first bar or running task to now, at
        least 10, at most `WINDOW`. *keys*: the rows shown even without a task (the
        engines, or hosts, registered)."""
        self.prune(now)
        rows = self.hosts if by_host else self.engines
        running = {}
        for engine, (msg_id, since, _) in self.running.items():
            running.setdefault(self.labels.get(engine, "?") if by_host else engine, []).append(
                [round(max(since, now - WINDOW) - now, 2), msg_id, round(max(0.0, now - since), 1)])
        keys = sorted(set(rows) | set(running) | set(keys), key=lambda key: (str(type(key)), key))
        out = [{"key": key, "bars": rows[key].bars(now) if key in rows else [],
                "running": sorted(running.get(key, []))} for key in keys]
        first = min([r["bars"][0][0] for r in out if r["bars"]] +
                    [r["running"][0][0] for r in out if r["running"]] + [0.0])
        return {"rows": out, "span": round(min(WINDOW, max(10.0, -first + 1)), 1), "by_host": by_host}


def seconds(date):
    """Seconds since the epoch of a message header's ``date`` (ISO 8601, or a datetime)."""
    if isinstance(date, datetime.datetime):
        moment = date
    else:
        moment = datetime.datetime.fromisoformat(str(date).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
