"""
What the engines started, for the supervisor (``supervisor.py``), read from all of /proc
every ``RESCAN`` s (psutil finds a process's children only so: see
``process_tree.tree``): each engine's tree (its memory counts; what left its process group
is ended with it, see ``Supervisor.ended``), and the orphans: the supervisor's children
that are none of its own (an engine, a KernelNanny, the GPU query, the host report), left
to it as their subreaper by a process that ended; they are ended (SIGTERM, SIGKILL after
a grace).
"""

from ..shared import process_tree


class OrphanScan:
    """Scans for *engines* (`engine_life.Engine` by number); *helpers*: the supervisor's
    other children, each with its ``pid`` (None while it has none); *leftovers* (a
    `process_tree.Ending`) ends the orphans with *grace* s."""

    def __init__(self, engines, helpers, leftovers, grace):
        self.engines, self.helpers, self.leftovers, self.grace = engines, helpers, leftovers, grace

    def run(self):
        for engine in self.engines.values():
            engine.tree = process_tree.tree(engine.child.pid) if engine.child else []
        ours = {pid for e in self.engines.values() for pid in (e.child and e.child.pid, e.kernel_nanny)}
        orphans = process_tree.children() - ours - {helper.pid for helper in self.helpers}
        self.leftovers.end([p for pid in orphans for p in process_tree.alone(pid)], self.grace)
