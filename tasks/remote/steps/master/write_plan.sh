# shellcheck shell=sh
# shellcheck disable=SC2154  # run: set by setup() in lib.sh

write_plan() {  # write_plan LABEL JSON: what fab started on the engine host LABEL, for the dashboard
  # The dashboard (tasks/remote/jupyter/dashboard/extension.py, in the master's Jupyter) reads
  # $run/dashboard/LABEL.json: the engines expected there, their threads and GPUs. The
  # plan is written whole under a name of its own (a dot file, which the dashboard does
  # not read), then renamed: a reader gets the old plan or the new one, never half of one.
  mkdir -p "$run/dashboard" && plan_file=$(mktemp "$run/dashboard/.$1.json.XXXXXX") || exit 1
  if ! { printf '%s\n' "$2" > "$plan_file" && mv -f "$plan_file" "$run/dashboard/$1.json"; }; then
    rm -f "$plan_file"
    exit 1
  fi
}
