# shellcheck shell=sh

install_env() {  # install_env ENV PYTHON [ARCHIVE] < REQUIREMENTS_BASE64
  # Create the environment ENV with PYTHON if it lacks one, and install the pinned
  # requirements there. With ARCHIVE (a tar.gz of wheels already put on the host,
  # relative to the home), pip installs from it alone, with no index, and the archive
  # is removed. Hosts that share ENV's file system take turns (a lock file beside it).
  # Reports created= and ipyparallel=.
  user_env  # PYTHON may come from the user's SETUP (module load python/3.11)
  umask 022  # the environment is for every user of the host to run
  env=$1 python=$2 archive=${3:-}
  mkdir -p "$(dirname "$env")" && exec 8> "$env.install-lock" && flock 8 || exit 1
  if [ -x "$env/bin/python" ]; then
    echo created=no
  else
    "$python" -m venv "$env" || exit 1
    echo created=yes
  fi
  work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT || exit 1
  base64 -d > "$work/requirements.txt" || exit 1
  set -- "$env/bin/python" -m pip install --disable-pip-version-check -q
  if [ -n "$archive" ]; then
    tar -xzf "$HOME/$archive" -C "$work"
    status=$?
    rm -f "$HOME/$archive"
    [ "$status" = 0 ] || exit 1
    set -- "$@" --no-index --find-links "$work"
  fi
  "$@" -r "$work/requirements.txt" || exit 1
  "$env/bin/python" -c 'import importlib.metadata as m; print("ipyparallel=" + m.version("ipyparallel"))'
}
