"""
What a host has and uses, sampled by the supervisor (``supervisor.py``) every few seconds
for ``cluster.status --json`` and the dashboard: CPU use, load, memory and, where
``nvidia-smi`` answers, each GPU's use and memory. Read with psutil; no engine time.
"""

import os
import subprocess

import psutil

#: The one query of each GPU: what ``gpu_table`` in lib.sh asks, and its use.
GPU_QUERY = ("--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu",
             "--format=csv,noheader,nounits")
MIB = 1 << 20


def sample():
    """The host now: ``cpu_percent`` (all cores, since the last sample), ``load`` (1, 5,
    15 min), ``cores``, ``memory_used`` and ``memory_total`` (bytes) and ``gpus``."""
    memory = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(interval=None), "load": list(os.getloadavg()),
            "cores": os.cpu_count(), "memory_used": memory.total - memory.available,
            "memory_total": memory.total, "gpus": gpus()}


def gpus(run=subprocess.run):
    """Each GPU as ``{index, uuid, name, memory_total, memory_used, percent}`` (memory in
    bytes); [] without nvidia-smi or when it fails (a driver being updated)."""
    try:
        said = run(["nvidia-smi", *GPU_QUERY], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if said.returncode:
        return []
    found = []
    for line in said.stdout.splitlines():
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
