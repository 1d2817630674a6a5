"""
The cluster's Python environment: what ``fab cluster.install`` puts in ``CLUSTER_ENV``.

`REQUIREMENTS` pins the packages every host gets, so that controller and
engines match; `install` builds the command that creates the environment and
installs them, from an index or from an uploaded wheelhouse.
"""

import os
import tarfile

from .commands import q

REQUIREMENTS = os.path.join(os.path.dirname(__file__), "cluster-requirements.txt")


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
    the home), pip installs from it alone, with no index. Hosts that share the
    environment's file system take turns (a lock file beside it). Reports
    ``created=`` and the installed versions.
    """
    env = settings.cluster_env
    pip = '"$env/bin/python" -m pip install --disable-pip-version-check -q'
    lines = [
        "umask 022  # the environment is for every user of the host to run",
        f"env={q(env)}",
        'mkdir -p "$(dirname "$env")" && exec 8> "$env.install-lock" && flock 8',
        'if [ -x "$env/bin/python" ]; then echo created=no; else',
        f'  {q(python)} -m venv "$env" || exit 1',
        "  echo created=yes",
        "fi",
        'work=$(mktemp -d) && trap \'rm -rf "$work"\' EXIT || exit 1',
        'reqs="$work/requirements.txt"',
        f"printf '%s\\n' {q(requirements)} > \"$reqs\"",
    ]
    if archive:
        lines += [
            f'tar -xzf "$HOME"/{q(archive)} -C "$work"; status=$?; rm -f "$HOME"/{q(archive)}',
            '[ "$status" = 0 ] || exit 1',
            f'{pip} --no-index --find-links "$work" -r "$reqs" || exit 1',
        ]
    else:
        lines.append(f'{pip} -r "$reqs" || exit 1')
    lines.append(
        "\"$env/bin/python\" -c 'import importlib.metadata as m; print(\"ipyparallel=\" "
        "+ m.version(\"ipyparallel\"))'")
    return "\n".join(lines)
