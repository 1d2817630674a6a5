"""
The state of a host's engines, as its supervisor (``supervisor.py``) writes it for its
readers, both files from one dict and replaced whole (a reader never sees half of one):

- ``NAME-engines.json``: the supervisor's pid, how engines start, the time, the host's
  sample and each engine's pid, state, starts and memory; read by ``cluster.status``
  (``host_status.sh`` sends it whole) and the host report (``host_report.py``).
- ``NAME-engines.states``: a line ``N STATE`` per engine, for the shell, which has no
  JSON parser: ``start_engines.sh`` counts the engines stopped or given up in it.

The supervisor writes them on every change and at every sample; a full disk skips a write,
and the next tries again.
"""

import json
import os


class StateFile:
    """The two files whose paths begin with *stem* (``RUN_DIR/NAME-engines``), written
    when ``dirty`` (a change since the last write)."""

    def __init__(self, stem):
        self.json_path, self.lines_path = f"{stem}.json", f"{stem}.states"
        self.dirty = True

    def write(self, state):
        """Write *state* (its ``engines``: each engine's facts by number) to both files."""
        try:
            _replace(self.json_path, json.dumps(state))
            _replace(self.lines_path, "".join(
                f"{number} {facts['state']}\n" for number, facts in state["engines"].items()))
            self.dirty = False
        except OSError:  # a full disk: the next change or sample tries again
            pass


def _replace(path, text):
    """Write *text* beside *path*, then put it in its place."""
    partial = f"{path}.partial"
    with open(partial, "w") as out:
        out.write(text)
    os.replace(partial, path)
