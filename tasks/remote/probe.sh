# shellcheck shell=sh
# shellcheck disable=SC2154  # python, run: set by setup() in lib.sh

probe() {  # probe ARGUMENTS_JSON < PROBE_PY: ask the controller, with the cluster's Python
  # The program (tasks/remote/probe.py) comes on stdin; it reads the Jupyter token and port
  # from their 0600 files in the run directory, never from a command line.
  user_env
  "$python" - "$1" "$run"
}
