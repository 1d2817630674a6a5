"""
The dashboard's task stream: the tasks of the last `WINDOW` s, as the engines themselves
tell them, kept in the master's Jupyter between two reads of the page. Pure: `Watcher`
(``ipp_dashboard.py``) feeds it what it hears on the controller's IOPub relay.

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

import datetime
import re

WINDOW = 300.0  # seconds of stream kept and shown
BIN = 1.5  # seconds of one bar of ended tasks: at most 200 bars per row
MANY = 50  # engines from which each host is one row (and one summary)
TASK_REQUESTS = ("apply_request", "execute_request")  # what a task is, to an engine
TRACEBACK = 20_000  # characters of a traceback kept
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
    """The stream (see the module). Engines are the hub's ids; *host* the engine's host."""

    def __init__(self):
        self.running = {}  # engine: [msg_id, since, host]
        self.errors = {}  # msg_id: its failure, until its task ends
        self.engines, self.hosts = {}, {}  # engine or host: its Row
        self.failures = []  # failures ended since the last `take_failures`

    def began(self, engine, msg_id, when, host):
        previous = self.running.get(engine)
        if previous and previous[0] != msg_id:  # its idle was lost: it ended by now
            self.ended(engine, previous[0], when, host)
        self.running[engine] = [msg_id, when, host]

    def failed(self, engine, msg_id, content, when, host):
        text = ANSI.sub("", "\n".join(str(line) for line in content.get("traceback") or []))
        places = PLACE.findall(text)
        self.errors[msg_id] = {
            "msg_id": msg_id, "time": when, "engine": engine, "host": host,
            "ename": str(content.get("ename") or "Error")[:200],
            "evalue": str(content.get("evalue") or "")[:2000],
            "place": places[-1] if places else "", "traceback": text[-TRACEBACK:]}

    def ended(self, engine, msg_id, when, host):
        began = self.running.get(engine)
        start = when
        if began and began[0] == msg_id:
            del self.running[engine]
            start = min(began[1], when)
        error = self.errors.pop(msg_id, None)
        self.engines.setdefault(engine, Row()).add(start, when, error is None)
        self.hosts.setdefault(host, Row()).add(start, when, error is None)
        if error:
            self.failures.append(error)

    def engines_gone(self, present, now):
        """Tasks running on engines no longer registered end as failed: the hub ends them
        with an ``EngineError`` for their clients."""
        for engine in [e for e in self.running if e not in present]:
            msg_id, _, host = self.running[engine]
            self.failed(engine, msg_id, {"ename": "EngineError", "evalue":
                        f"engine {engine} went away while it ran this task"}, now, host)
            self.ended(engine, msg_id, now, host)

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
        """The page's stream: ``{"rows": [{"key", "bars", "running"}], "span", "by_host"}``: one row
        per engine (or per host, *by_host*), its bars (see `Row.bars`) and its tasks
        running as ``[since, msg_id, seconds running]`` (*since*: seconds before *now*,
        at most `WINDOW`). ``span``: seconds from the
        first bar or running task to now, at least 10, at most `WINDOW`. *keys*: the rows
        shown even without a task (the engines, or hosts, registered)."""
        self.prune(now)
        rows = self.hosts if by_host else self.engines
        running = {}
        for engine, (msg_id, since, host) in self.running.items():
            running.setdefault(host if by_host else engine, []).append(
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
