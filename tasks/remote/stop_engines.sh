# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

stop_engines() {  # stop_engines: stop every engine of the cluster on this host; reports left_engine=
  lock
  halt engine "$name-engine-[0-9]+"
}
