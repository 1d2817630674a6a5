"""
The cluster's Python environment: what ``fab cluster.install`` puts in ``CLUSTER_ENV``.

`REQUIREMENTS` pins the packages every host gets, so that controller and
engines match; `install` builds the command that creates the environment and
installs them, from an index or from an uploaded wheelhouse.
"""

import os
import tarfile

from ..commands.script import Step
from ..commands.shipped import HOOK, packed, program

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cluster-requirements.txt")


def requirements():
    """The pinned requirements, without comments, one a line."""
    with open(REQUIREMENTS) as lines:
        return "\n".join(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())


def pack(wheelhouse, folder):
    """Make a tar.gz of the files of *wheelhouse* in *folder*; returns its path."""
    archive = os.path.join(folder, "wheels.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(os.listdir(wheelhouse)):
            tar.add(os.path.join(wheelhouse, name), arcname=name)
    return archive


def install(settings, requirements, python="python3", archive=None):
    """
    Create ``CLUSTER_ENV`` with *python* if it lacks one, and install *requirements* there.

    With *archive* (a tar.gz of wheels already put on the host, path relative to
    the home), pip installs from it alone, with no index. See
    ``tasks/remote/steps/any/install_env.sh``; reports ``created=`` and ``ipyparallel=``. The
    files of `HOOK` (what makes each Python of the environment give ipyparallel's `Client` a
    lasting routing id, see ``tasks/remote/jupyter/ipp_cluster.py``) go into its site-packages.
    """
    files = {"requirements.txt": requirements,
             **{path.rsplit("/", 1)[-1]: program(path) for path in HOOK}}
    return Step("install_env", (settings.cluster_env, python, archive or ""),
                packed(files, mode=0o644))
