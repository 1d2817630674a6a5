"""
What each host receives of ``tasks/remote/``, the one index of it, read from the tree.

- A step is a shell function of a file of ``tasks/remote/steps/`` (by role: ``master/``,
  ``engines/``, ``slurm/``, ``any/``); `step_file` finds the file that defines it, from
  the files themselves (``NAME() {`` at the start of a line).
- A step that runs a Python program gets, on its stdin, the package ``ipp_remote``: the
  folders of ``tasks/remote/`` that `PACKAGES` names for it (`package`), with their
  ``__init__.py`` files, which the step unpacks into the run directory and runs with
  ``python RUN_DIR/ipp_remote MODULE`` (``tasks/remote/__main__.py``). The package keeps
  its folders, so what runs there is what the tests import here.
"""

import base64
import gzip
import io
import re
import tarfile
import zlib
from functools import lru_cache
from importlib import resources

#: The package's name on the hosts (a folder of the run directory).
PACKAGE = "ipp_remote"

#: What of ``tasks/remote/`` each step that runs Python unpacks: folders, or single files.
PACKAGES = {
    "start_master": ("shared", "master", "jupyter"),
    "start_engines": ("shared", "engines"),
    "slurm_node": ("shared", "engines"),
    "probe": ("shared", "master/probe.py"),
    "relay": ("shared/loopback.py",),
    "start_keeper": ("shared", "master/keeper.py", "master/renewal.py"),
}

#: The files of ``tasks/remote/jupyter/`` that ``cluster.install`` puts into the
#: environment's site-packages (see ``steps/any/install_env.sh``).
HOOK = ("jupyter/ipp_cluster.py", "jupyter/ipp_cluster.pth")

_DEFINES = re.compile(r"^([a-z_][a-z0-9_]*)\(\) \{", re.M)


def _root():
    return resources.files("tasks.remote")


@lru_cache(maxsize=None)
def program(path):
    """The text of the file *path* of ``tasks/remote/`` (``steps/lib.sh``), as it is sent."""
    return _root().joinpath(path).read_text()


@lru_cache(maxsize=None)
def step_files():
    """``{function: path}`` of every shell function that the files of ``tasks/remote/steps/``
    define, each path relative to ``tasks/remote/``."""
    found = {}
    for folder in sorted((f for f in _root().joinpath("steps").iterdir() if f.is_dir()),
                         key=lambda f: f.name):
        for file in sorted((f for f in folder.iterdir() if f.name.endswith(".sh")),
                           key=lambda f: f.name):
            for function in _DEFINES.findall(file.read_text()):
                found.setdefault(function, f"steps/{folder.name}/{file.name}")
    return found


def step_file(function):
    """The file of ``tasks/remote/`` that defines the step *function*."""
    try:
        return step_files()[function]
    except KeyError:
        raise ValueError(f"no file of tasks/remote/steps/ defines the step {function}") from None


@lru_cache(maxsize=None)
def package(step):
    """What the step *step* unpacks (`PACKAGES`), as a base64 tar.gz for its stdin."""
    paths = {"__init__.py", "__main__.py"}
    for part in PACKAGES[step]:
        node = _root().joinpath(part)
        if node.is_dir():
            paths.update(_files(node, part))
        else:
            paths.add(part)
            paths.add(part.rsplit("/", 1)[0] + "/__init__.py")
    return as_base64(_tar({f"{PACKAGE}/{path}": program(path) for path in sorted(paths)}))


def _files(folder, prefix):
    for node in folder.iterdir():
        if node.is_dir() and node.name != "__pycache__":
            yield from _files(node, f"{prefix}/{node.name}")
        elif node.name.endswith((".py", ".html", ".pth")):
            yield f"{prefix}/{node.name}"


def _tar(files, mode=0o600):
    # gzip's header without the time of writing: the same files give the same bytes, so that
    # the job script fab engines.script prints is the one cluster.up sends (and Slurm keeps)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            # a time of its own for each content (tar keeps it): Python takes a module's
            # cached bytecode for a source of the same time and size, which an edit that
            # keeps the size (RESCAN = 5 -> 7) would otherwise be, after an upgrade
            info.mtime = zlib.crc32(data) % (1 << 30) or 1  # a past time: tar warns of a future one
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def packed(files, mode=0o600):
    """*files* (``{name: text}``) as a base64 tar.gz for a step's stdin, each of *mode*."""
    return as_base64(_tar(files, mode))


def as_base64(data):
    """*data* (bytes or text) as base64 lines, for a step's stdin."""
    return base64.encodebytes(data if isinstance(data, bytes) else data.encode()).decode()
