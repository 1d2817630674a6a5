# shellcheck shell=sh
# shellcheck disable=SC2154  # name, sec, engine_file: set by setup() in lib.sh

stop_master() {  # stop_master: stop the controller and Jupyter, remove the connection files
  # Reports left_controller= and left_jupyter=.
  lock
  halt controller "$name-controller"
  halt jupyter "$name-jupyter"
  rm -f "$engine_file" "$sec/ipcontroller-client.json"
  rm -rf "$run/dashboard"  # what write_plan wrote for it
}
