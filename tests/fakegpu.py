"""
A stand-in for ``nvidia-smi``: it answers the one query this project asks
(``tasks/remote/steps/lib.sh: gpu_table``) for *count* GPUs and refuses anything else, so
that a test sees the query change.
"""

from pathlib import Path

QUERY = "--query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits"
MODEL = "NVIDIA H200"


def uuid(index):
    """The UUID the stand-in gives GPU *index*, as the driver writes one."""
    return f"GPU-{index:08x}-1d2e-4f5a-8b6c-7d8e9f0a1b2c"


def install(folder, count=4):
    """Write an executable ``nvidia-smi`` for *count* GPUs into *folder*; returns its path."""
    lines = "".join(f"{i}, {uuid(i)}, {MODEL}, 143771\\n" for i in range(count))
    path = Path(folder) / "nvidia-smi"
    path.write_text(f"""#!/bin/sh
if [ "$*" != "{QUERY}" ]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2
  exit 2
fi
printf '{lines}'
""")
    path.chmod(0o755)
    return path
