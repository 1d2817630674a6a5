# shellcheck shell=sh

install_env() {  # install_env ENV PYTHON [ARCHIVE] < BASE64_TAR_GZ
  # Create the environment ENV (~/... : under this host's home) with PYTHON if it lacks
  # one, and install the pinned requirements there (requirements.txt of the tar.gz on
  # stdin); ipp_cluster.py and ipp_cluster.pth of it go into its site-packages, so that
  # each of its Pythons gives ipyparallel's Client a lasting routing id. With ARCHIVE
  # (a tar.gz of wheels already put on the host, relative to the home), pip installs
  # from it alone, with no index, and the archive is removed. Hosts that share ENV's
  # file system take turns (a lock file beside it).
  # Reports created= and ipyparallel=.
  user_env  # PYTHON may come from the user's SETUP (module load python/3.11)
  umask 022  # the environment is for every user of the host to run
  env=$(at_home "$1") python=$2 archive=${3:-}
  mkdir -p "$(dirname "$env")" && exec 8> "$env.install-lock" && flock 8 || exit 1
  if [ -x "$env/bin/python" ]; then
    echo created=no
  else
    "$python" -m venv "$env" || exit 1
    echo created=yes
  fi
  work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT || exit 1
  base64 -d | tar -xzf - -C "$work" || exit 1
  set -- "$env/bin/python" -m pip install --disable-pip-version-check -q
  if [ -n "$archive" ]; then
    mkdir "$work/wheels" && tar -xzf "$HOME/$archive" -C "$work/wheels"
    status=$?
    rm -f "$HOME/$archive"
    [ "$status" = 0 ] || exit 1
    set -- "$@" --no-index --find-links "$work/wheels"
  fi
  "$@" -r "$work/requirements.txt" || exit 1
  site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))') &&
    [ -d "$site" ] && cp "$work/ipp_cluster.py" "$work/ipp_cluster.pth" "$site/" || exit 1
  "$env/bin/python" -c 'import importlib.metadata as m; print("ipyparallel=" + m.version("ipyparallel"))'
}
