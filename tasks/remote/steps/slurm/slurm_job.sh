# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run, bin, profile, engine_file, timeout, python: set by setup() in lib.sh
#
# What runs inside an allocation's job (tasks/commands/slurm.py renders the job script: lib.sh,
# this file, then a call of slurm_job whose stdin is the node program: lib.sh, this file, then
# a call of slurm_node with the engines' programs on its stdin).

slurm_seconds() {  # slurm_seconds TIME: a Slurm time ([D-]H:M:S, M:S, M) in seconds; empty if none
  printf '%s\n' "$1" | awk '/^[0-9]+(-[0-9]+)?(:[0-9]+)*$/ {
    days = 0; time = $0
    if (index(time, "-")) {
      days = substr(time, 1, index(time, "-") - 1)
      time = substr(time, index(time, "-") + 1)
    }
    n = split(time, part, ":")
    if (days || n == 3) seconds = part[1] * 3600 + part[2] * 60 + part[3]
    else if (n == 2) seconds = part[1] * 60 + part[2]
    else seconds = part[1] * 60
    print days * 86400 + seconds }'
}

# The mark, in a node's run folder in a job (~/.ipp-cluster/NAME/NODE@JOB), that the
# controller's connection file came over SSH (see slurm_keyed).
KEYED=connection-file.came

slurm_folder() {  # slurm_folder LABEL: make ~/.ipp-cluster/NAME/LABEL, a node's run folder in a job; print it
  # 0700 and this user's, or fail saying so (the job's output and its engines' logs go there).
  mkdir -p "$base/$1" && chmod 700 "$HOME/.ipp-cluster" "$base" "$base/$1" || exit 1
  [ -O "$base/$1" ] || { echo "$base/$1 is not $(id -un)'s" >&2; exit 1; }
  printf '%s\n' "$base/$1"
}

slurm_keyed() {  # slurm_keyed LABEL...: mark that the controller's connection file is on this node
  # Run over SSH on a node of running jobs without a shared home (NODE@JOB: LABEL), after
  # write_engine_file: each job's step here (slurm_node) starts its engines once its mark
  # is there. So the key never is in the job script, which Slurm keeps and shows to its
  # administrators (and, where the site stores scripts, to account coordinators).
  for label in "$@"; do
    folder=$(slurm_folder "$label") && date > "$folder/$KEYED" || exit 1
  done
}

slurm_job() {  # slurm_job MARGIN MASTER GROUP SHARED < NODE PROGRAM (base64): the batch script, on the first node
  # Runs the node program (slurm_node) on every node of the allocation, one task per node
  # holding all of the job's CPUs there, as one job step: srun gives each task the program
  # on its standard input. On SIGUSR1 (engines.restart, see slurm_restart) the step's tasks
  # get SIGTERM, their supervisors stop their engines, and a new step starts them anew: no
  # new job, no new wait in the queue. On SIGUSR2 (slurm_hold) the step ends the same way
  # and the job runs on without engines, until SIGUSR1. MARGIN seconds before the time
  # limit (at most a quarter of the time the job had; SIGALRM, from the job's own clock),
  # the tasks get SIGTERM too: the engines stop cleanly, a task still running on one fails
  # (the engine is gone), and the job waits for its limit, so that Slurm says TIMEOUT. A
  # step that ends by itself ends the job. MASTER=yes (slurm_master): this node runs the
  # controller and Jupyter, which fab starts over SSH; the job starts held (its engines
  # would wait for a controller: cluster.up starts them with SIGUSR1 once it runs), a step
  # that ends by itself leaves it held, and whatever ends the job stops the controller and
  # Jupyter too (stop_master), so that nothing outlives it. Only the engines' step is
  # signalled (srun passes SIGTERM to its tasks), never the job's other processes.
  # SHARED=no (the nodes do not share the master's home): sbatch writes no output
  # (--output=/dev/null: a path that exists on every node is one of /tmp's, whose name
  # another user can take first), and this script writes its own into its node's run
  # folder, ~/.ipp-cluster/NAME/NODE@JOB/GROUP-JOB.out (see slurm_folder).
  again=yes held='' ending='' node_program='' in_charge=$2 step=''
  if [ "$4" != yes ]; then
    output=$(slurm_folder "${SLURMD_NODENAME:-$(uname -n)}@$SLURM_JOB_ID") || exit 1
    exec >>"$output/$3-$SLURM_JOB_ID.out" 2>&1
  fi
  [ "$in_charge" != yes ] || { again='' held=yes; }
  trap 'again=yes held=""; slurm_end_step' USR1
  trap 'held=yes; slurm_end_step' USR2
  trap 'ending=yes; slurm_end_step' ALRM
  trap 'rm -f "$node_program"; [ "$in_charge" != yes ] || stop_master >/dev/null 2>&1' EXIT
  trap 'exit 143' TERM  # a cancel: the EXIT trap removes the program
  node_program=$(mktemp) || exit 1
  base64 -d > "$node_program" || exit 1
  user_env  # SETUP may load Slurm's module
  left=$(slurm_seconds "$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null)")
  if [ -n "$left" ]; then
    margin=$1
    [ "$margin" -le $((left / 4)) ] || margin=$((left / 4))
    (sleep $((left - margin)) && kill -ALRM $$) </dev/null >/dev/null 2>&1 &
  fi
  while [ -z "$ending" ]; do
    if [ -z "$again" ]; then  # held: until engines.restart, the time limit or the end
      sleep 60 & wait $!
      continue
    fi
    again=''
    launch_header "step of job $SLURM_JOB_ID on $SLURM_JOB_NODELIST"
    srun --whole --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" \
      --ntasks-per-node=1 /bin/sh -s < "$node_program" &
    step=$!
    while kill -0 "$step" 2>/dev/null; do wait "$step"; done
    step=''
    if [ -z "$again$held$ending" ]; then  # the step ended by itself: so does the job,
      [ "$in_charge" = yes ] || exit 0     # but for the controller's, which runs on
      held=yes
    fi
    [ -z "$held" ] || echo "=== $(LC_ALL=C date): the engines stopped; the job runs on (engines.restart starts them)"
  done
  echo "=== $(LC_ALL=C date): the time limit is near: the engines stopped; the job ends at its limit"
  while :; do sleep 60 & wait $!; done  # waited for, so that a signal's trap runs at once
}

slurm_end_step() {  # slurm_end_step: SIGTERM to the engines' step (its srun), if one runs
  [ -z "$step" ] || kill -TERM "$step" 2>/dev/null || true
}

slurm_node() {  # slurm_node ENGINES THREADS GPUS ENGINE_RESTART MEMORY_LIMIT SHARED < PROGRAMS
  # This node's engines, kept by one supervisor until the job step ends, as on an SSH host
  # (see start_engines) but in the step instead of a screen session: ENGINES, else one per
  # GPU of GPUS, else one per CPU Slurm gave the job here; GPUS=auto takes the GPUs Slurm
  # bound to the job (CUDA_VISIBLE_DEVICES), else those nvidia-smi lists. The engines
  # register under NODE@JOB (this node's Slurm name, the job's id): a later job's engines
  # on the same node are never counted with what is left of an earlier one's. Its run
  # directory (logs, the supervisor's state) is ~/.ipp-cluster/NAME/NODE@JOB. They start
  # once the controller's connection file is here: with SHARED=yes, the master's; else
  # the one fab brings over SSH once the job runs (see slurm_keyed), never one that an
  # earlier controller left on this node.
  label=${SLURMD_NODENAME:-$(uname -n)}@$SLURM_JOB_ID keep=$4 limit=$5 gpus=$3
  user_env
  # shellcheck disable=SC2034  # read by plan_engines
  cores=${SLURM_CPUS_ON_NODE:-}
  if [ "$gpus" = auto ] && [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then gpus=$CUDA_VISIBLE_DEVICES; fi
  plan_engines "$1" "$2" "$gpus"
  export_threads
  run=$(slurm_folder "$label") || exit 1  # the node may run another allocation's job of this cluster too
  if [ "$6" = yes ]; then
    wait_file "$engine_file" "$timeout" || {
      echo "$label: no connection file $engine_file after $timeout s: is the controller up?" >&2
      exit 1
    }
  else
    wait_file "$run/$KEYED" "$timeout" || {
      echo "$label: the controller's connection file did not come over SSH in $timeout s" >&2
      exit 1
    }
  fi
  base64 -d | tar -xzf - -C "$run" || exit 1
  rm -f "$run/$name"-engine-*.gaveup "$run/$name-engines.json" "$run/$name-engines.states"
  : > "$run/$name-engines.requests"
  chosen=$(printf '%s' "$devices" | tr '\n' ',')
  echo "=== $label: $count engines, $threads threads each${chosen:+, GPUs $chosen}"
  exec env "IPP_CLUSTER_TAG=$name/engine" "$python" "$run/ipp_remote" engines.supervisor "$run" "$name" "$label" \
    "$count" "$keep" "$limit" "$chosen" -- "${bin}ipengine" "--profile=$profile" \
    "--IPEngine.max_heartbeat_misses=$ENGINE_HEARTBEAT_MISSES" </dev/null
}
