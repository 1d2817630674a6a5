"""
What the dashboard shows that must outlive a restart of the controller or of Jupyter:
the tasks completed, the failures and the engines' restarts. SQLite, in the run directory
(``dashboard.sqlite``), written by the master's Jupyter alone.

- Completed: the hub counts each engine's completed tasks (``queue_status``), but forgets
  them when the engine goes and when the controller restarts (the restored engines count
  from 0). Kept here per engine (its uuid): the count carried over from before, and the
  last count seen, so that the total is exact across both.
- Engines: every uuid seen, with its host and number; an engine's restarts are the
  uuids of its host and number, less one.
- Failures: the last `KEEP` tasks that raised, with their tracebacks.

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
        row = self.db.execute("SELECT value FROM meta WHERE key = 'controller'").fetchone()
        if controller and (row is None or row[0] != controller):
            with self.db:
                self.db.execute("DELETE FROM engine")
                self.db.execute("DELETE FROM failure")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('controller', ?)", (controller,))
            self.groups = None

    def completed(self, counts):
        """The cluster's completed tasks, from *counts* ``{uuid: (host, number,
        completed)}`` of the engines registered now."""
        known = dict(((uuid, (carried, last)) for uuid, carried, last in
                      self.db.execute("SELECT uuid, carried, last FROM engine")))
        changes = []
        for uuid, (host, number, count) in counts.items():
            carried, last = known.get(uuid, (0, 0))
            if count < last:  # the controller restarted: its hub counts anew
                carried += last
            if (carried, count) != known.get(uuid):
                changes.append((uuid, host, number, carried, count))
                known[uuid] = (carried, count)
        if changes:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO engine VALUES (?, ?, ?, ?, ?)", changes)
        return sum(carried + last for carried, last in known.values())

    def restarts(self):
        """``{(host, number): restarts}`` of the engines seen."""
        return {(host, number): seen - 1 for host, number, seen in self.db.execute(
            "SELECT host, number, COUNT(*) FROM engine GROUP BY host, number")}

    def add_failures(self, failures):
        if not failures:
            return
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO failure VALUES (:msg_id, :time, :engine, :host, :ename,"
                " :evalue, :place, :traceback)", failures)
            self.db.execute("DELETE FROM failure WHERE rowid <= (SELECT MAX(rowid) FROM failure) - ?",
                            (KEEP,))
        self.groups = None

    def failed(self):
        return self.db.execute("SELECT COUNT(*) FROM failure").fetchone()[0]

    def failure_groups(self):
        """The last failures, grouped by exception type and place (the innermost function
        of the traceback): ``{ename, place, count, engines, first, last, evalue, msg_id}``,
        the last message and msg_id of each group (SQLite takes them from the row of MAX)."""
        if self.groups is None:
            self.groups = [
                {"ename": ename, "place": place, "count": count, "first": first, "last": last,
                 "engines": sorted({int(e) for e in engines.split(",") if e.lstrip("-").isdigit()})[:20],
                 "evalue": evalue, "msg_id": msg_id}
                for ename, place, count, first, engines, evalue, msg_id, last in self.db.execute(
                    "SELECT ename, place, COUNT(*), MIN(time), GROUP_CONCAT(DISTINCT engine),"
                    " evalue, msg_id, MAX(time) FROM failure GROUP BY ename, place"
                    " ORDER BY MAX(time) DESC LIMIT ?", (GROUPS,))]
        return self.groups

    def traceback(self, msg_id):
        """The failure of *msg_id* (its traceback too), or None."""
        row = self.db.execute("SELECT msg_id, time, engine, host, ename, evalue, place, traceback"
                              " FROM failure WHERE msg_id = ?", (msg_id,)).fetchone()
        keys = ("msg_id", "time", "engine", "host", "ename", "evalue", "place", "traceback")
        return dict(zip(keys, row)) if row else None
