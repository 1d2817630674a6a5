"""
The cluster's packages as wheels for the hosts' Python (Debian's python3), as the
``wheelhouse`` fixture and `tests.suite` (before its shards, which have no network) need them.
"""

import subprocess
import sys
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: a CLUSTER_ENV made with it suits every user
REQUIREMENTS = Path(__file__).resolve().parent.parent / "tasks" / "cluster-requirements.txt"


def download_wheelhouse(folder):
    """Download the wheels of ``tasks/cluster-requirements.txt`` for `SYSTEM_PYTHON`'s version
    into *folder* (made if need be); returns *folder*."""
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(folder).mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                    "--only-binary=:all:", f"--python-version={version}", "-d", str(folder),
                    "-r", str(REQUIREMENTS)], check=True, timeout=600)
    return Path(folder)
