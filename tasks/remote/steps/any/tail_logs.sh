# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run: set by setup() in lib.sh

tail_logs() {  # tail_logs LINES ROLE...: the last LINES of the logs of each ROLE's sessions
  lines=$1
  shift
  for role in "$@"; do
    for log in "$run/$name-$role"*.log; do
      [ -f "$log" ] || continue
      printf '=== %s\n' "$(basename "$log" .log)"
      tail -n "$lines" "$log"
    done
  done
}
