# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run: set by setup() in lib.sh

renew_engines() {  # renew_engines N...: start engines N... again at once (see supervisor.py)
  # The controller dropped their registrations: the host's supervisor reads a request
  # per engine from its requests file. Reports renewed= (the numbers asked for that the
  # running supervisor keeps: those of its plan).
  renewed=
  if [ -n "$(sessions "$name-engines")" ]; then
    read -r count _ < "$run/$name-engines.plan" || count=0
    for n in "$@"; do
      [ "$n" -le "$count" ] || continue
      printf 'renew %s\n' "$n" >> "$run/$name-engines.requests"
      renewed="$renewed $n"
    done
  fi
  echo "renewed=$renewed"
}
