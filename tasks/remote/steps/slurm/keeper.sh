# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run, python: set by setup() in lib.sh

start_keeper() {  # start_keeper PLAN_JSON KEEP < PROGRAMS: the keeper of the cluster's Slurm jobs
  # Writes the plan (slurm/keeper.json: which groups, how many jobs, their renewal), runs
  # the keeper once (each group topped up to its jobs: reports keeper_once=ok, or its
  # error), then, with KEEP=yes (a group renews), starts it in the screen session
  # NAME-keeper under the nanny unless it runs (keeper=started or running); else stops it
  # (keeper=none). The
  # programs (tasks/remote/master/keeper.py, renewal.py and shared/) come as a base64
  # tar.gz on stdin, unpacked into the run directory as start_master's are.
  slurm_need sbatch
  make_run_dir
  base64 -d | tar -xzf - -C "$run" || exit 1
  mkdir -p "$run/slurm" && chmod 700 "$run/slurm" || exit 1
  printf '%s\n' "$1" > "$run/slurm/keeper.json.new" && mv "$run/slurm/keeper.json.new" "$run/slurm/keeper.json" || exit 1
  exec 9>&-  # the keeper takes the lock itself
  said=$("$python" "$run/ipp_remote" master.keeper "$run" --once 2>&1) || code=$?
  printf '%s\n' "$said" | grep '^=== keeper ' >> "$run/$name-keeper.log" || true  # its log says them
  rest=$(printf '%s\n' "$said" | grep -v -e '^=== keeper ' -e '^$')  # what went wrong
  if [ -z "$rest" ] && [ "${code:-0}" != 0 ]; then  # exit 1 alone: another held the lock 20 s
    rest="the keeper could not take $run/lock (exit ${code}): no job was topped up"
  fi
  echo "keeper_once=$(if [ -z "$rest" ]; then echo ok; else slurm_line "$rest"; fi)"
  if [ "$2" != yes ]; then
    lock
    halt keeper "$name-keeper" >/dev/null
    echo keeper=none
  elif sessions "$name-keeper" >/dev/null; then
    echo keeper=running
  else
    lock
    rm -f "$run/$name-keeper.gaveup"
    launch keeper "$name-keeper" "$python" "$run/ipp_remote" shared.nanny keeper \
      "$run/$name-keeper.gaveup" -- "$python" "$run/ipp_remote" master.keeper "$run"
    exec 9>&-
    echo keeper=started
  fi
}

stop_keeper() {  # stop_keeper: stop the keeper (before the jobs are cancelled); reports left_keeper=
  lock
  halt keeper "$name-keeper"
  rm -f "$run/slurm/keeper.json" "$run/slurm/keeper.state" "$run/slurm/"*.script "$run/slurm/"*.sbatch
  exec 9>&-
}

keeper_said() {  # keeper_said: report the keeper's last decisions (keeper_state=JSON) and keeper=
  # running (its screen session is there), gaveup (its nanny gave up) or none
  state=$(tr -d '\n' < "$run/slurm/keeper.state" 2>/dev/null)
  echo "keeper_state=$state"
  if sessions "$name-keeper" >/dev/null; then
    echo keeper=running
  elif [ -s "$run/$name-keeper.gaveup" ]; then
    echo keeper=gaveup
  else
    echo keeper=none
  fi
}
