"""
The dashboard's rows of engine hosts: pure functions of what `Watcher` (``ipp_dashboard.py``)
read. Per host: the engines fab planned there (``RUN_DIR/dashboard/LABEL.json``, from
``write_plan.sh``), those the hub has, each engine's state from the stream, and the
host's last sample (``RUN_DIR/hosts/LABEL.json``: CPU, load, memory, GPUs and each engine's
resident memory, sent every few seconds by the host's supervisor to the controller, see
``host_report.py`` and ``host_inbox.py``). From `dashboard_stream.MANY` engines on, a host
is summed up (engines by state, a histogram of their memory) instead of one chip each.
"""

import glob
import json
import math
import os
import statistics

STALE = 20.0  # seconds after which a host's sample is called old on the page
BUCKETS = 8  # bars of a host's histogram of engine memory


def read_folder(folder, shape=lambda document: document):
    """``{name: document}`` of the JSON files in *folder*; what cannot be read is left out
    (a file being replaced, or a folder removed by a stop), and so is a document that is no
    dict or that *shape* (given it) answers None to (see `sample`)."""
    found = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        try:
            with open(path) as file:
                document = json.load(file)
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and shape(document) is not None:
            found[os.path.basename(path)[:-len(".json")]] = document
    return found


def sample(document):
    """*document* when it has the shape of a host's sample as `rows` reads it, else None:
    ``sampled`` (seconds since the epoch), ``host`` (a dict) and ``engines`` (``{N:
    {"rss": bytes, "limit": bytes}}``, each None or a number). The inbox keeps only such
    reports (``host_inbox.py``), and the page reads only such files."""
    if not isinstance(document, dict) or not _number(document.get("sampled")):
        return None
    engines = document.get("engines")
    if not isinstance(document.get("host"), dict) or not isinstance(engines, dict):
        return None
    for facts in engines.values():
        if not isinstance(facts, dict) or not all(
                facts.get(key) is None or _number(facts.get(key)) for key in ("rss", "limit")):
            return None
    return document


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rows(plans, samples, engines, queues, restarts, running, now, many):
    """
    The hosts' rows, sorted by host.

    :param engines: ``{engine id: uuid}`` of the hub (uuid ``LABEL/N/TIME/RANDOM``).
    :param queues: the hub's ``queue_status``.
    :param restarts: ``{(LABEL, N): restarts}`` (see `History.restarts`).
    :param running: the engine ids that run a task now.
    :param many: sum each host up instead of listing its engines.
    """
    table = {label: _row(label, plan) for label, plan in plans.items()}
    for eid, uid in sorted(engines.items()):
        label, _, rest = uid.partition("/")
        number = rest.split("/")[0] if rest else "?"
        row = table.setdefault(label, _row(label, {}))
        queue = queues.get(str(eid), {})
        waiting = queue.get("tasks", 0) + queue.get("queue", 0)
        devices = (plans.get(label) or {}).get("devices") or []
        facts = ((samples.get(label) or {}).get("engines") or {}).get(number) or {}
        row["engines"].append({
            "id": eid, "number": number, "busy": eid in running,
            "queued": max(0, waiting - (eid in running)), "completed": queue.get("completed", 0),
            "restarts": restarts.get((label, number), 0), "rss": facts.get("rss"),
            "limit": facts.get("limit"),
            "gpu": devices[(int(number) - 1) % len(devices)] if devices and number.isdigit() else None})
    for label, row in table.items():
        row["registered"] = len(row["engines"])
        sample = samples.get(label)
        if sample:
            row["resources"] = sample.get("host") or None
            row["sample_age"] = round(max(0.0, now - sample.get("sampled", now)), 1)
            row["stale"] = row["sample_age"] > STALE
        if many:
            row["summary"], row["engines"] = summary(row["engines"]), []
    return sorted(table.values(), key=lambda row: row["host"])


def _row(label, plan):
    return {"host": label, "expected": plan.get("expected"), "threads": plan.get("threads"),
            "engines": [], "registered": 0, "resources": None, "sample_age": None, "stale": False}


def summary(engines):
    """A host's engines summed up: how many are busy and idle, how many restarted, their
    completed tasks (min, median, max) and a histogram of their resident memory."""
    done = sorted(e["completed"] for e in engines) or [0]
    memory = [e["rss"] for e in engines if e["rss"]]
    histogram = None
    if memory:
        low, high = min(memory), max(memory)
        width = max(1, (high - low) / BUCKETS)
        counts = [0] * BUCKETS
        for rss in memory:
            counts[min(BUCKETS - 1, int((rss - low) / width))] += 1
        histogram = {"low": low, "high": high, "counts": counts}
    return {"busy": sum(e["busy"] for e in engines), "idle": sum(not e["busy"] for e in engines),
            "restarted": sum(1 for e in engines if e["restarts"]),
            "queued": sum(e["queued"] for e in engines),
            "completed": [done[0], int(statistics.median(done)), done[-1]], "memory": histogram}
