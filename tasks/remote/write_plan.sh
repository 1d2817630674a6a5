# shellcheck shell=sh
# shellcheck disable=SC2154  # run: set by setup() in lib.sh

write_plan() {  # write_plan LABEL JSON: what fab started on the engine host LABEL, for the dashboard
  # The dashboard (tasks/remote/ipp_dashboard.py, in the master's Jupyter) reads
  # $run/dashboard/LABEL.json: the engines expected there, their threads and GPUs.
  mkdir -p "$run/dashboard" && printf '%s\n' "$2" > "$run/dashboard/$1.json" || exit 1
}
