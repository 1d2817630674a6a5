"""
Print the versions of Python, ipyparallel and jupyter_server in the cluster's Python.

Run on each host by ``tasks/remote/steps/any/facts.sh`` as ``python - < versions.py``. It
reads package metadata, which is much faster than importing the packages.
"""

import importlib.metadata
import sys


def main():
    print("python=%d.%d.%d" % sys.version_info[:3])
    for name in ("ipyparallel", "jupyter_server"):
        try:
            print(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{name}=")


if __name__ == "__main__":
    main()
