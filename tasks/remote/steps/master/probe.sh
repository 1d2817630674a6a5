# shellcheck shell=sh
# shellcheck disable=SC2154  # python, run: set by setup() in lib.sh

probe() {  # probe ARGUMENTS_JSON < PROGRAMS: ask the controller, with the cluster's Python
  # The program (tasks/remote/master/probe.py with the folder shared/ it imports, a base64
  # tar.gz on stdin) is unpacked into a folder of its own, removed after it ran; it reads
  # the Jupyter token and port from their 0600 files in the run directory, never from a
  # command line, and sends the token to no listener but this user's.
  user_env
  code=$(mktemp -d) || exit 1
  base64 -d | tar -xzf - -C "$code" || { rm -rf "$code"; exit 1; }
  "$python" "$code/ipp_remote" master.probe "$1" "$run"
  status=$?
  rm -rf "$code"
  return "$status"
}
