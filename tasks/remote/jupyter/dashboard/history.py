"""
What the dashboard shows that must outlive a restart of the controller or of Jupyter:
the tasks completed, the failures and the engines' restarts. SQLite, in the run directory
(``dashboard.sqlite``), written by the master's Jupyter alone.

- Completed: the hub counts each engine's completed tasks (``queue_status``), but forgets
  them when the engine goes and when the controller restarts (the restored engines count
  from 0). Kept here per engine (its uuid): the count carried over from before, and the
  last count seen. At a restart of the controller (its nanny's count of restarts went
  up, or an engine's count went down) every engine's last count is carried over, so the
  total stays exact across both.
- Engines: every uuid seen, with its host and number; an engine's restarts are the
  uuids of its host and number, less one.
- Failures: how many, and the last `KEEP` tasks that raised, with their tracebacks.

A new controller (its log's session start differs from the one recorded) begins anew.
"""

import sqlite3

KEEP = 10_000  # failures kept
GROUPS = 20  # groups of failures the page gets
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS engine (uuid TEXT PRIMARY KEY, host TEXT, number TEXT,
                                   carried INTEGER, last INTEGER);
CREATE TABLE IF NOT EXISTS failure (msg_id TEXT PRIMARY KEY, time REAL, engine INTEGER,
    host TEXT, ename TEXT, evalue TEXT, place TEXT, traceback TEXT);
CREATE INDEX IF NOT EXISTS failure_group ON failure (ename, place, time);
"""


class History:
    """The dashboard's history in *path* (see the module); each method one transaction."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, check_same_thread=False)  # used under Watcher.lock
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        with self.db:
            self.db.executescript(SCHEMA)
        self.groups = None  # the failures grouped, until a failure is added

    def begin(self, controller):
        """Keep the history of the controller that started at *controller* (its log's
        session start); another controller's is dropped."""
        if controller and self.meta("controller") != controller:
            with self.db:
                self.db.execute("DELETE FROM engine")
                self.db.execute("DELETE FROM failure")
                self.db.execute("DELETE FROM meta")
                self.db.execute("INSERT INTO meta VALUES ('controller', ?)", (controller,))
            self.groups = None

    def meta(self, key, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def completed(self, counts, restarts=0):
        """The cluster's completed tasks, from *counts* ``{uuid: (host, number,
        completed)}`` of the engines registered now, after *restarts* of the controller."""
        known = {uuid: [carried, last] for uuid, carried, last in
                 self.db.execute("SELECT uuid, carried, last FROM engine")}
        changed = set()
        if restarts > int(self.meta("restarts", 0)):  # the hub counts anew: carry all over
            for uuid, entry in known.items():
                entry[0], entry[1] = entry[0] + entry[1], 0
                changed.add(uuid)
        for uuid, (_, _, count) in counts.items():
            if uuid not in known:
                known[uuid] = [0, 0]
                changed.add(uuid)
            entry = known[uuid]
            if count < entry[1]:  # counted anew all the same (a restart not logged yet)
                entry[0] += entry[1]
            if count != entry[1]:
                entry[1] = count
                changed.add(uuid)
        with self.db:  # no UPSERT: a master's SQLite may be older than 3.24
            self.db.executemany("INSERT OR IGNORE INTO engine VALUES (?, ?, ?, 0, 0)",
                                [(uuid, *counts[uuid][:2]) for uuid in changed if uuid in counts])
            self.db.executemany("UPDATE engine SET carried = ?, last = ? WHERE uuid = ?",
                                [(*known[uuid], uuid) for uuid in changed])
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('restarts', ?)", (restarts,))
        return sum(carried + last for carried, last in known.values())

    def restarts(self):
        """``{(host, number): restarts}`` of the engines seen."""
        return {(host, number): seen - 1 for host, number, seen in self.db.execute(
            "SELECT host, number, COUNT(*) FROM engine GROUP BY host, number")}

    def add_failures(self, failures):
        """Keep *failures* (see `dashboard.stream.TaskStream.failed`) and count them."""
        if not failures:
            return
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO failure VALUES (:msg_id, :time, :engine, :host, :ename,"
                " :evalue, :place, :traceback)", failures)
            self.db.execute("DELETE FROM failure WHERE rowid <= (SELECT MAX(rowid) FROM failure) - ?",
                            (KEEP,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('failed', ?)",
                            (self.failed() + len(failures),))
        self.groups = None

    def failed(self):
        """How many tasks failed, all told (not only the `KEEP` kept)."""
        return int(self.meta("failed", 0))

    def failure_groups(self):
        """The last failures, grouped by exception type and place (the innermost function
        of the traceback): ``{ename, place, count, engines, first, last, evalue, msg_id}``,
        with the message and msg_id of each group's last failure."""
        if self.groups is None:
            self.groups = []
            for ename, place, count, first, last, engines in self.db.execute(
                    "SELECT ename, place, COUNT(*), MIN(time), MAX(time), GROUP_CONCAT(DISTINCT engine)"
                    " FROM failure GROUP BY ename, place ORDER BY MAX(time) DESC LIMIT ?", (GROUPS,)):
                evalue, msg_id = self.db.execute(
                    "SELECT evalue, msg_id FROM failure WHERE ename = ? AND place = ?"
                    " ORDER BY time DESC, rowid DESC LIMIT 1", (ename, place)).fetchone()
                self.groups.append({
                    "ename": ename, "place": place, "count": count, "first": first, "last": last,
                    "engines": sorted({int(e) for e in str(engines).split(",")
                                       if e.lstrip("-").isdigit()})[:20],
                    "evalue": evalue, "msg_id": msg_id})
        return self.groups

    def traceback(self, msg_id):
        """The failure of *msg_id* (its traceback too), or None."""
        row = self.db.execute("SELECT msg_id, time, engine, host, ename, evalue, place, traceback"
                              " FROM failure WHERE msg_id = ?", (msg_id,)).fetchone()
        keys = ("msg_id", "time", "engine", "host", "ename", "evalue", "place", "traceback")
        return dict(zip(keys, row)) if row else None
