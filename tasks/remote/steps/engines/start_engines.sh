# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run, bin, profile, engine_file, timeout: set by setup() in lib.sh

start_engines() {  # start_engines LABEL COUNT RESTART ENGINE_RESTART MEMORY_LIMIT THREADS GPUS < PROGRAMS
  # Start this host's engines of the cluster: one supervisor in the screen session
  # NAME-engines (tasks/remote/engines/supervisor.py and the files it imports, a base64 tar.gz on
  # stdin, unpacked into the run directory) starts and keeps them all. LABEL is the host's
  # name in the inventory: each engine registers as LABEL/N/TIME/RANDOM (given in a 0600
  # file, never on a command line), so that the controller can tell the engines of each
  # host apart. COUNT, THREADS and GPUS: see plan_engines in lib.sh; ENGINE_RESTART and
  # MEMORY_LIMIT: see supervisor.py.
  # Every engine starts with THREADS in the thread settings of OpenMP, MKL, OpenBLAS,
  # numexpr and Accelerate (a value the user's SETUP exported wins) and, with GPUS, with
  # CUDA_VISIBLE_DEVICES set to one GPU, round-robin. A supervisor that runs with the same
  # plan is asked to start the engines it stopped or gave up on; with RESTART=yes, another
  # plan, or none running (a supervisor that crashed leaves its engines), every engine is
  # stopped first and a new supervisor starts them all. Either way every give-up marker of
  # the cluster's engines goes, those of engines beyond COUNT too (see host_status).
  # Reports expected=, threads=, devices= and started=.
  label=$1 restart=$3 keep=$4 limit=$5
  user_env
  plan_engines "$2" "$6" "$7"
  export_threads
  echo "expected=$count"
  echo "threads=$OMP_NUM_THREADS"
  echo "devices=$(printf '%s' "$devices" | tr '\n' ' ')"
  wait_file "$engine_file" "$timeout" || {
    echo "no connection file $engine_file after $timeout s: is the controller up?" >&2
    exit 1
  }
  make_run_dir
  base64 -d | tar -xzf - -C "$run" || exit 1
  supervisor="$name-engines"
  plan="$count $OMP_NUM_THREADS $keep $limit $(printf '%s' "$devices" | tr '\n' ',')"
  if [ "$restart" != yes ] && [ -n "$(sessions "$supervisor")" ] \
    && [ "$(cat "$run/$supervisor.plan" 2>/dev/null)" = "$plan" ]; then
    # the supervisor's state for the shell: N STATE a line (see tasks/remote/engines/engine_state.py)
    started=$(grep -cE '^[0-9]+ (stopped|gaveup)$' "$run/$supervisor.states" 2>/dev/null)
    rm -f "$run/$name"-engine-*.gaveup
    printf 'start\n' >> "$run/$supervisor.requests"
    echo "started=${started:-0}"
    return
  fi
  halt engine "$supervisor" >/dev/null
  rm -f "$run/$name"-engine-*.gaveup "$run/$name"-engine-*.session.json "$run/$supervisor.json" \
    "$run/$supervisor.states"
  : > "$run/$supervisor.requests"
  printf '%s\n' "$plan" > "$run/$supervisor.plan"
  launch engine "$supervisor" "$python" "$run/ipp_remote" engines.supervisor "$run" "$name" "$label" "$count" \
    "$keep" "$limit" "$(printf '%s' "$devices" | tr '\n' ',')" \
    -- "${bin}ipengine" "--profile=$profile" "--IPEngine.max_heartbeat_misses=$ENGINE_HEARTBEAT_MISSES"
  echo "started=$count"
}
