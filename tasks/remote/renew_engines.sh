# shellcheck shell=sh
# shellcheck disable=SC2154  # name, uid: set by setup() in lib.sh

renew_engines() {  # renew_engines N...: start engines N... again at once (see nanny.py)
  # The controller dropped their registrations: each engine's nanny, the only process
  # in its screen session, gets SIGUSR1 and starts its engine again. Reports renewed=
  # (the numbers of the engines whose nanny was told). Screen and ps are asked once,
  # not once per engine: a host may have dozens to renew, and be busy.
  listing=$(screens)
  parents=$(ps -o ppid=,pid= -u "$uid")
  renewed=
  for n in "$@"; do
    screen_pid=$(printf '%s\n' "$listing" | awk -v session="$name-engine-$n" '$2 == session { print $1 }')
    [ -n "$screen_pid" ] || continue
    nanny=$(printf '%s\n' "$parents" | awk -v parent="$screen_pid" '$1 == parent { print $2; exit }')
    [ -n "$nanny" ] && kill -USR1 "$nanny" 2>/dev/null && renewed="$renewed $n"
  done
  echo "renewed=$renewed"
}
