# shellcheck shell=sh
# shellcheck disable=SC2154  # python: set by setup() in lib.sh

port_holder() {  # port_holder PORT < PROGRAMS: report own= and holder= of 127.0.0.1:PORT
  # Who listens there, from /proc/net/tcp and tcp6 (tasks/remote/shared/loopback.py, a base64
  # tar.gz on stdin, unpacked into a folder of its own and removed after it ran):
  # cluster.tunnel asks before it forwards each connection to Jupyter's port, so that
  # what a browser sends there (the token) goes to no other user's program.
  user_env
  code=$(mktemp -d) || exit 1
  base64 -d | tar -xzf - -C "$code" || { rm -rf "$code"; exit 1; }
  "$python" "$code/ipp_remote" shared.loopback "$1"
  status=$?
  rm -rf "$code"
  return "$status"
}
