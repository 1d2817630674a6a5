#!/bin/sh
# install.sh: everything `fab` needs on this machine, in one command that works the same
# as root (a container: apt-get itself, there is no sudo) and as a user (sudo apt-get, or
# the command that root must run when there is no sudo); apt only for what is missing.
#   sh install.sh          Debian's packages for a user, then .venv with requirements.txt
#   sh install.sh --test   also what the tests need (sshd, shells, Slurm, chromium, ...),
#                          and .venv with requirements-test.txt
# shellcheck disable=SC2086  # $packages and $missing are lists of words, split on purpose
set -eu
cd "$(dirname "$0")"

packages="screen python3-venv"
case $#:${1-} in
  0:) requirements=requirements.txt next="fab cluster.up" ;;
  1:--test)
    packages="$packages openssh-server iproute2 nftables chromium shellcheck tcsh csh zsh fish ksh"
    packages="$packages lmod slurmctld slurmd slurm-client munge sudo"
    requirements=requirements-test.txt next="python -m tests.suite" ;;
  *) echo "usage: sh install.sh [--test]" >&2; exit 2 ;;
esac

export DEBIAN_FRONTEND=noninteractive
missing=
for package in $packages; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) || true
  [ "$status" = "install ok installed" ] || missing="${missing:+$missing }$package"
done
as_root() {  # as_root COMMAND...: root runs it, a user through sudo; else say what root must do
  [ "$(id -u)" != 0 ] || { "$@"; return; }
  if ! command -v sudo >/dev/null; then
    echo "install.sh: missing system packages: $missing, and no sudo to install them" >&2
  elif sudo env DEBIAN_FRONTEND=noninteractive "$@"; then
    return
  else
    echo "install.sh: sudo $* failed (above)" >&2
  fi
  echo "as root, run:" >&2
  echo "  apt-get update && apt-get install -y $missing" >&2
  echo "then run this script again." >&2
  exit 1
}
if [ -z "$missing" ]; then
  echo "install.sh: the system packages are present: $packages"
else
  as_root apt-get update
  as_root apt-get install -y $missing
fi

# The pinned packages (tasks/cluster-requirements.txt) need Python 3.11 or newer.
python=python3
[ ! -x .venv/bin/python ] || python=.venv/bin/python
if ! version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])
sys.exit(sys.version_info < (3, 11))' 2>/dev/null); then
  echo "install.sh: $(uname -n): $python is Python ${version:-(none)}, but the cluster needs 3.11 or newer:" \
    "install one (Ubuntu 22.04: apt-get install python3.11-venv) and make it python3 on the PATH" >&2
  exit 1
fi
[ -x .venv/bin/pip ] || python3 -m venv .venv
.venv/bin/pip install --disable-pip-version-check -r "$requirements"
# .venv serves as CLUSTER_ENV on this machine: its Pythons give ipp.Client() a lasting
# routing id (tasks/remote/jupyter/ipp_cluster.py), as cluster.install makes it on the hosts. The
# hook's files are links to this folder's: .venv runs them as they are now, never a copy
# left from an older install.sh.
if ! site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') ||
    ! [ -d "$site" ]; then
  echo "install.sh: .venv/bin/python names no site-packages folder for the ipp_cluster hook:" \
    "remove .venv and run install.sh again" >&2
  exit 1
fi
for file in ipp_cluster.py ipp_cluster.pth; do
  ln -sf "$PWD/tasks/remote/jupyter/$file" "$site/$file"
done
echo "install.sh: done; next: . .venv/bin/activate && $next"
