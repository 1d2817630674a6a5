# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run, bin, profile, engine_file, timeout: set by setup() in lib.sh

start_engines() {  # start_engines LABEL COUNT RESTART ENGINE_RESTART MEMORY_LIMIT THREADS GPUS < NANNY
  # Start the engines missing on this host, each in a screen session of its own, kept
  # by the nanny (tasks/remote/nanny.py with process_tree.py, a base64 tar.gz on stdin,
  # unpacked into the run directory): it starts a crashed engine again
  # (ENGINE_RESTART=yes) and ends one past MEMORY_LIMIT (bytes, auto or empty). LABEL is
  # the host's name in the inventory: each engine registers with a Session.session of
  # LABEL/N/TIME, so that the controller can tell the engines of each host apart.
  # COUNT, THREADS and GPUS: see plan_engines in lib.sh.
  # Every engine starts with THREADS in the thread settings of OpenMP, MKL, OpenBLAS,
  # numexpr and Accelerate (a value the user's SETUP exported wins) and, with GPUS, with
  # CUDA_VISIBLE_DEVICES set to one GPU, round-robin. With RESTART=yes, or when more
  # engines run than wanted, every engine is stopped first. The give-up markers of the
  # engines it starts and of those beyond COUNT go (see host_status).
  # The engines start in waves, one engine per core (at least 4) a second (each
  # nanny waits for its wave), so that neither this host nor the controller is flooded.
  # Reports expected=, threads=, devices= and started=.
  label=$1 restart=$3 keep=$4 limit=$5
  user_env
  plan_engines "$2" "$6" "$7"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
  export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$threads}"
  export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$threads}"
  export NUMEXPR_NUM_THREADS="${NUMEXPR_NUM_THREADS:-$threads}"
  export VECLIB_MAXIMUM_THREADS="${VECLIB_MAXIMUM_THREADS:-$threads}"
  echo "expected=$count"
  echo "threads=$OMP_NUM_THREADS"
  echo "devices=$(printf '%s' "$devices" | tr '\n' ' ')"
  gpus=$(printf '%s\n' "$devices" | grep -c .)
  wait_file "$engine_file" "$timeout" || {
    echo "no connection file $engine_file after $timeout s: is the controller up?" >&2
    exit 1
  }
  make_run_dir
  base64 -d | tar -xzf - -C "$run" || exit 1
  for marker in "$run/$name"-engine-*.gaveup; do  # of engines no longer planned: stale
    n=${marker%.gaveup}
    [ ! -f "$marker" ] || [ "${n##*-}" -le "$count" ] || rm -f "$marker"
  done
  running=$(sessions "$name-engine-[0-9]+")
  for session in $running; do [ "${session##*-}" -le "$count" ] || restart=yes; done
  if [ "$restart" = yes ]; then
    halt engine "$name-engine-[0-9]+" >/dev/null
    running=
  fi
  wave=$(nproc) started=0 n=1
  [ "$wave" -ge 4 ] || wave=4
  while [ "$n" -le "$count" ]; do
    if ! printf '%s\n' "$running" | grep -qx "$name-engine-$n"; then
      rm -f "$run/$name-engine-$n.gaveup"
      if [ "$gpus" -gt 0 ]; then
        CUDA_VISIBLE_DEVICES=$(printf '%s\n' "$devices" | sed -n "$(((n - 1) % gpus + 1))p")
        export CUDA_VISIBLE_DEVICES
      fi
      launch engine "$name-engine-$n" "$python" "$run/nanny.py" engine "$label" "$n" "$keep" \
        "$limit" "$count" "$run/$name-engine-$n.gaveup" "$((started / wave))" \
        -- "${bin}ipengine" "--profile=$profile" \
        "--IPEngine.max_heartbeat_misses=$ENGINE_HEARTBEAT_MISSES"
      started=$((started + 1))
    fi
    n=$((n + 1))
  done
  echo "started=$started"
}
