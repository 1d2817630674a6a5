"""
The JSON documents of ``--json`` (``cluster.status``, ``engines.status``, ``master.status``,
``cluster.info``, ``cluster.check``): what a program reads instead of a table.

Each task prints one document on stdout and nothing else there; its exit code and its
``error:`` lines on stderr are the table's. A document holds the same per-host facts as
the table, as JSON values (numbers as numbers, lists as lists, null for unknown). The
schema is written in docs/json.md ("JSON for programs").
"""

import json

from .. import __version__

REACHED = ("ok", "failed")  # the states of a host that answered (see tasks.ssh.fleet)


def dump(document):
    """Print *document* on stdout, as one JSON document."""
    print(json.dumps(document, indent=1))


def number(text):
    """*text* as an int or float when it is one (a fact is text), else None."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return None


def status(command, cluster, rows, stopped):
    """The document of a status task: a host per row of `tasks.steps.status.read_status`."""
    hosts = [{"host": row["host"], "roles": row["roles"], "state": row["state"],
              "reachable": row["state"] in REACHED, "sessions": row["sessions"],
              "registered": row["registered"], "expected": row["expected"],
              "restarts": row["restarts"], "threads": number(row["threads"]),
              "problems": row["problems"], "notes": row.get("notes", []),
              **{key: row[key] for key in MASTER_KEYS + ENGINE_KEYS + ALLOCATION_KEYS if key in row}}
             for row in rows]
    return {"command": command, "cluster": cluster, "stopped": stopped,
            "ok": not stopped and not any(host["problems"] for host in hosts), "hosts": hosts}


#: What a master's row adds (see tasks.steps.status): the nannies' restarts and when.
MASTER_KEYS = ("controller_restarts", "controller_last_restart", "jupyter_restarts",
               "jupyter_last_restart")
#: What an engine host's row adds: each engine its supervisor keeps, and the host's resources.
ENGINE_KEYS = ("engines", "resources")
#: What a Slurm allocation's row adds (its job, its keeper), and the row of one of its nodes (its allocation).
ALLOCATION_KEYS = ("job", "keeper", "allocation")


def info(results):
    """The document of ``cluster.info``: this ipp-cluster's version, then each host's facts
    (`tasks.steps.preflight.read_facts`)."""
    hosts = []
    for name, result in results.items():
        facts = result.facts if result.ok else {}
        hosts.append({"host": name, "state": result.state, "reason": result.reason or None,
                      "cores": number(facts.get("cores")), "gpus": facts.get("gpus") or None,
                      "memory_total_kb": number(facts.get("mem_total_kb")),
                      "memory_available_kb": number(facts.get("mem_available_kb")),
                      "load": [number(x) for x in facts.get("load", "").split()],
                      "users": facts.get("users", "").split(),
                      "python": facts.get("python") or None,
                      "ipyparallel": facts.get("ipyparallel") or None})
    return {"command": "cluster.info", "version": __version__,
            "ok": all(r.ok for r in results.values()), "hosts": hosts}


def check(results, problems):
    """The document of ``cluster.check``: each host's state, versions and problems, then each
    Slurm allocation that Slurm refuses (its ``"state": "refused"``)."""
    hosts = [{"host": name, "state": "not ready" if result.ok and problems.get(name) else result.state,
              "ready": result.ok and not problems.get(name),
              "python": result.facts.get("python") or None if result.ok else None,
              "ipyparallel": result.facts.get("ipyparallel") or None if result.ok else None,
              "problems": problems.get(name, [])} for name, result in results.items()]
    hosts += [{"host": name, "state": "refused", "ready": False, "python": None, "ipyparallel": None,
               "problems": found} for name, found in problems.items() if name not in results]
    return {"command": "cluster.check", "ok": all(host["ready"] for host in hosts), "hosts": hosts}
