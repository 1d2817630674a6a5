"""
The controller's journal of tasks in flight (``controller.py``'s `HealingScheduler`): held in
memory, and written ahead into an append-only file in the run directory, a record per
submission, dispatch and end, each one write(2) made before the scheduler goes on (no flush
to the disk: it outlives the process, not the machine). About 1.5 us of CPU a record, where
SQLite's transaction per write took about 16 (measured alone, WAL, no sync).

A record: its kind (one byte: `ADD`, `SENT`, `DONE`), the number of its fields (one byte),
each field's length (4 bytes, little-endian), then the fields. A record cut short by a crash
mid-write ends the reading: the tasks before it are kept. The file is rewritten with the
tasks in flight alone (into a new file, then renamed over the old one: a crash leaves one
or the other whole) when it opens, and whenever it holds `COMPACT` times more records than
tasks in flight (and at least `SMALLEST`), so that it stays small and a write stays cheap.
"""

import os
import struct

ADD, SENT, DONE = b"a", b"s", b"d"
COMPACT = 4
SMALLEST = 10_000
_HEAD = struct.Struct("<cB")
_LENGTH = struct.Struct("<I")


def record(kind, *fields):
    """The bytes of one record of *kind* with *fields* (bytes)."""
    return (_HEAD.pack(kind, len(fields)) + b"".join(_LENGTH.pack(len(f)) for f in fields)
            + b"".join(fields))


def replay(data):
    """{msg_id: [client, header, engine or None]}: the tasks in flight after the records of *data*."""
    tasks, at = {}, 0
    while at + _HEAD.size <= len(data):
        kind, count = _HEAD.unpack_from(data, at)
        lengths_end = at + _HEAD.size + count * _LENGTH.size
        if lengths_end > len(data):
            break
        lengths = [_LENGTH.unpack_from(data, at + _HEAD.size + n * _LENGTH.size)[0] for n in range(count)]
        if lengths_end + sum(lengths) > len(data):
            break  # cut short by a crash mid-write
        fields, at = [], lengths_end
        for length in lengths:
            fields.append(data[at:at + length])
            at += length
        msg_id = fields[0].decode("utf-8")
        if kind == ADD:
            tasks[msg_id] = [fields[1], fields[2], fields[3] if count > 3 else None]
        elif kind == SENT and msg_id in tasks:
            tasks[msg_id][2] = fields[1]
        elif kind == DONE:
            tasks.pop(msg_id, None)
    return tasks


class Journal:
    """The scheduler's tasks in flight: msg_id, client, request header, engine (once sent),
    kept in *path* (see the module): taken back from it when *keep*, else emptied."""

    def __init__(self, path, keep):
        self.path, self.tasks, self.fd = path, {}, None
        if keep and os.path.exists(path):
            with open(path, "rb") as file:
                self.tasks = replay(file.read())
        self._rewrite()

    def rows(self):
        return [(msg_id, client, header, engine) for msg_id, (client, header, engine) in self.tasks.items()]

    def add(self, msg_id, client, header):
        self.tasks[msg_id] = [client, header, None]
        self._append(record(ADD, msg_id.encode("utf-8"), client, header))

    def sent(self, msg_id, engine):
        task = self.tasks.get(msg_id)
        if task is not None:
            task[2] = engine
            self._append(record(SENT, msg_id.encode("utf-8"), engine))

    def done(self, msg_id):
        if self.tasks.pop(msg_id, None) is not None:
            self._append(record(DONE, msg_id.encode("utf-8")))

    def _append(self, data):
        os.write(self.fd, data)
        self.records += 1
        if self.records > max(SMALLEST, COMPACT * len(self.tasks)):
            self._rewrite()

    def _rewrite(self):
        """The file anew, with the tasks in flight alone."""
        fd = os.open(self.path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            for msg_id, (client, header, engine) in self.tasks.items():
                file.write(record(ADD, msg_id.encode("utf-8"), client, header,
                                  *([engine] if engine is not None else [])))
        os.replace(self.path + ".new", self.path)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.records = len(self.tasks)
