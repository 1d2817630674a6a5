# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run: set by setup() in lib.sh

stop_engines() {  # stop_engines: stop every engine of the cluster on this host; reports left_engine=
  # The engines' give-up markers go too: a stop is no crash loop (see host_status); so does
  # the supervisor's state: a state left without a supervisor is one that crashed; and so
  # do the engines' identity files that a supervisor killed at once left.
  lock
  halt engine "$name-engines"
  rm -f "$run/$name"-engine-*.gaveup "$run/$name"-engine-*.session.json "$run/$name-engines.json" \
    "$run/$name-engines.states"
}
