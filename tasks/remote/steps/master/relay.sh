# shellcheck shell=sh
# shellcheck disable=SC2154  # python: set by setup() in lib.sh

relay() {  # relay PORT < PROGRAMS, 3< the connection: relay it to 127.0.0.1:PORT, then exit
  # cluster.tunnel runs this in an SSH exec channel for each browser connection to
  # Jupyter: the script comes first on the channel's stdin, the browser's bytes after it,
  # sent only once the relay said relay=yes (so this shell has read none of them). The
  # call gives that stdin as fd 3 (the program, tasks/remote/shared/loopback.py, a base64 tar.gz,
  # comes as the function's own stdin, unpacked into a folder of its own and removed after
  # it ran). It needs the standard library alone: no SETUP runs, which would cost seconds
  # per connection, and Python starts isolated (-I) without site (-S): no environment
  # variable, user site or .pth file of CLUSTER_ENV (ipp_cluster.pth) runs or costs
  # anything. It exits, so that this shell reads nothing of what may follow.
  # A Python that cannot run the relay alone (the system's is too old, or one of SETUP's
  # needs its LD_LIBRARY_PATH) gets SETUP after all: seconds, but only there.
  "$python" -I -S -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null || user_env
  code=$(mktemp -d) || exit 1
  base64 -d | tar -xzf - -C "$code" || { rm -rf "$code"; exit 1; }
  "$python" -I -S "$code/ipp_remote" shared.loopback relay "$1" <&3 3<&-
  status=$?
  rm -rf "$code"
  exit "$status"
}
