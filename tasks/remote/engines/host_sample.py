"""
What a host has and uses, sampled by the supervisor (``supervisor.py``) every few seconds
for ``cluster.status --json`` and the dashboard: CPU use, load, memory and, where
``nvidia-smi`` answers, each GPU's use and memory. Read with psutil; no engine time.

``nvidia-smi`` can take seconds (a busy driver): `GpuQuery` runs it beside the
supervisor's loop, which reads its answer when it comes and never waits for it. `Sampler`
is the supervisor's job that takes both.
"""

import os
import selectors
import shutil
import signal
import time

import psutil

#: The one query of each GPU: what ``gpu_table`` in lib.sh asks, and its use.
GPU_QUERY = ("--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu",
             "--format=csv,noheader,nounits")
MIB = 1 << 20
QUERY_TIMEOUT = 10.0  # seconds nvidia-smi gets before it is killed and its answer skipped


def sample(gpus=()):
    """The host now: ``cpu_percent`` (all cores, since the last sample), ``load`` (1, 5,
    15 min), ``cores``, ``memory_used`` and ``memory_total`` (bytes) and *gpus* (the last
    answer of a `GpuQuery`)."""
    memory = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(interval=None), "load": list(os.getloadavg()),
            "cores": os.cpu_count(), "memory_used": memory.total - memory.available,
            "memory_total": memory.total, "gpus": list(gpus)}


class GpuQuery:
    """``nvidia-smi`` asked about every GPU, without waiting: `start` it, wait for `fd` to
    be readable, then `read`; ``gpus`` holds the last whole answer. Its process is a child
    of the caller, who reaps it (the supervisor reaps every child it has)."""

    def __init__(self):
        self.program = shutil.which("nvidia-smi")
        self.gpus, self.fd, self.pid, self.began, self.said = [], None, None, 0.0, b""

    def start(self):
        """Ask again, unless there is no nvidia-smi or the last question is still open."""
        if not self.program or self.fd is not None:
            return
        read, write = os.pipe()
        try:
            to_pipe = [(os.POSIX_SPAWN_DUP2, write, 1),
                       (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
            self.pid = os.posix_spawn(self.program, [self.program, *GPU_QUERY], dict(os.environ),
                                      file_actions=to_pipe)
        except OSError:
            os.close(read)
            self.program = None  # gone from the host: asked no more
            return
        finally:
            os.close(write)
        self.fd, self.began, self.said = read, time.monotonic(), b""

    def read(self):
        """Read what it said; at its end, its GPUs become ``gpus``."""
        chunk = os.read(self.fd, 1 << 16)
        self.said += chunk
        if not chunk:
            self.gpus = gpus(self.said.decode(errors="replace"))
            self.close()

    def overdue(self):
        """End a question open for longer than `QUERY_TIMEOUT` s (its answer is skipped)."""
        if self.fd is not None and time.monotonic() - self.began > QUERY_TIMEOUT:
            if self.pid is not None:  # not reaped yet: the pid is still its own
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.close()

    def ended(self):
        """Its process was reaped (its answer may still be read): its pid, free now for
        any other process, is signalled no more."""
        self.pid = None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
        self.fd = self.pid = None


class Sampler:
    """The supervisor's sampling: ``host``, the last `sample` with the GPUs' last answer,
    taken at each `run` (every ``SAMPLE`` s), which also asks nvidia-smi again (ending a
    question left unanswered) and registers its answer's pipe in *selector*, whose
    readiness the supervisor passes to `read`. ``changed()``: the state file is to be
    written."""

    def __init__(self, selector, changed):
        self.selector, self.changed = selector, changed
        self.gpus, self.host = GpuQuery(), {}

    def run(self):
        self.host = sample(self.gpus.gpus)
        self.changed()
        asked = self.gpus.fd
        self.gpus.overdue()
        if asked is not None and self.gpus.fd is None:  # closed: its number may come again
            self.selector.unregister(asked)
        if self.gpus.fd is None:
            self.gpus.start()
            if self.gpus.fd is not None:
                self.selector.register(self.gpus.fd, selectors.EVENT_READ, self)

    def read(self):
        """Read what nvidia-smi said (its pipe is readable)."""
        asked = self.gpus.fd
        self.gpus.read()
        if self.gpus.fd is None:
            self.selector.unregister(asked)


def gpus(text):
    """Each GPU in nvidia-smi's answer *text* as ``{index, uuid, name, memory_total,
    memory_used, percent}`` (memory in bytes); lines of another shape are skipped."""
    found = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 6:
            continue
        index, uuid, name, total, used, percent = cells
        found.append({"index": index, "uuid": uuid, "name": name,
                      "memory_total": _number(total) * MIB, "memory_used": _number(used) * MIB,
                      "percent": _number(percent)})
    return found


def _number(text):
    """A number of nvidia-smi's (``[N/A]`` where a GPU does not say: 0)."""
    try:
        return int(float(text))
    except ValueError:
        return 0
