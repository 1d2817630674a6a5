# shellcheck shell=sh
# shellcheck disable=SC2154  # name, sec, engine_file: set by setup() in lib.sh

stop_master() {  # stop_master: stop the controller and Jupyter, remove what they leave
  # Removed: the connection files, the controller's Curve key pair (its secret half too),
  # Jupyter's token (the next start makes a new one), the controller's journal of tasks
  # in flight, the dashboard's plans, the hosts' reports and its history; kept: the logs
  # (see docs/commands.md, cluster.down). Reports
  # left_controller= and left_jupyter=.
  lock
  halt controller "$name-controller"
  halt jupyter "$name-jupyter"
  rm -f "$engine_file" "$sec/ipcontroller-client.json" "$run/controller.curve" \
    "$run/tasks-in-flight."* "$run/dashboard.sqlite"* "$run/jupyter.token"
  rm -rf "$run/dashboard" "$run/hosts"  # what write_plan and host_inbox.py wrote for it
}
