"""
The engines' memory, for the supervisor (``supervisor.py``): each running engine's
resident memory with all it started (its tree, as the last `orphan_scan` found it; an
engine started since: itself alone), for the state file, and, past MEMORY_LIMIT, the
engine killed (its log says by how much; its end is no shutdown, and it restarts as
after a crash). The supervisor runs it every ``nanny.WATCH`` s with a limit, else at
each sample.
"""

import signal

from ..shared import nanny, process_tree


class MemoryWatch:
    """Watches *engines* (`engine_life.Engine` by number) against *limit* (bytes, or None);
    ``end(engine, signal)`` ends one (the supervisor's)."""

    def __init__(self, engines, limit, end):
        self.engines, self.limit, self.end = engines, limit, end

    def run(self):
        for engine in self.engines.values():
            if not engine.child:
                continue
            if not engine.tree:  # started since the last scan: the engine alone until the next
                engine.tree = process_tree.alone(engine.child.pid)
            engine.rss = process_tree.resident(engine.tree)
            if self.limit and engine.rss > self.limit and not engine.why:
                over = nanny.size(engine.rss - self.limit)
                engine.note(f"the engine uses {nanny.size(engine.rss)}, {over} over "
                            f"MEMORY_LIMIT ({nanny.size(self.limit)}): ending it")
                engine.why = f"passed MEMORY_LIMIT ({nanny.size(self.limit)}) by {over}"
                self.end(engine, signal.SIGKILL)
