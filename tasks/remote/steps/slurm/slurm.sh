# shellcheck shell=sh
# shellcheck disable=SC2154  # run, name: set by setup() in lib.sh
#
# The Slurm commands of the allocations, run on the master (the login node) as its user,
# after its SETUP (which may load Slurm's module). Each allocation's job is recorded in
# $run/slurm/GROUP.job when submitted; the other steps act on a recorded job only while
# Slurm says that it is this user's and has this name, so that no other user's job, and no
# job of another cluster, is ever touched (the keeper's other jobs of a group: in
# $run/slurm/GROUP+ID.job, see tasks/remote/master/keeper.py). Each step reports on one key=value line,
# slurm_INDEX=... (INDEX: the allocation's place in the command); what Slurm answers is a
# report, and a step fails only when Slurm cannot be asked.

slurm_need() {  # slurm_need PROGRAM: run SETUP, then fail unless Slurm's PROGRAM is on the PATH
  user_env
  command -v "$1" >/dev/null || {
    echo "$1 is not on the PATH of the master: Slurm's commands must be (SETUP may load its module)" >&2
    exit 1
  }
}

slurm_line() {  # slurm_line TEXT: TEXT on one line, its spaces squeezed
  printf '%s\n' "$1" | tr -s '\n\t' '  ' | sed 's/ *$//'
}

slurm_ours() {  # slurm_ours GROUP JOB_NAME: print GROUP's recorded job as squeue sees it, if it is ours
  # ID|STATE|REASON|TIME LEFT|NODES|START|NAME|USER; nothing without a record, when Slurm no
  # longer knows the job, or when the id now names another job (another user's, another
  # name). Fails, saying why, when squeue cannot answer: a job it cannot see may still run.
  id=$(cat "$run/slurm/$1.job" 2>/dev/null) || return 0
  case $id in '' | *[!0-9]*) return 0 ;; esac
  said=$(squeue -h --states=all -j "$id" -o '%i|%T|%r|%L|%N|%S|%j|%u' 2>&1) || case $said in
    *"Invalid job id"*) return 0 ;;
    *) echo "squeue cannot answer: $(slurm_line "$said")" >&2; return 1 ;;
  esac
  printf '%s\n' "$said" \
    | awk -F'|' -v id="$id" -v job="$2" -v me="$(id -un)" '$1 == id && $7 == job && $8 == me' | head -n 1
}

slurm_active() {  # slurm_active STATE: succeed for a job state that holds (or may hold) nodes
  # (the same list as ACTIVE in tasks/commands/slurm.py)
  case $1 in
    PENDING | RUNNING | CONFIGURING | COMPLETING | SUSPENDED | REQUEUED | RESIZING | SIGNALING \
      | STAGE_OUT) return 0 ;;
  esac
  return 1
}

slurm_submit() {  # slurm_submit INDEX GROUP JOB_NAME MODE OUTPUT SBATCH_OPTIONS... < JOB SCRIPT (base64)
  # MODE=test: ask Slurm whether it would run the job (sbatch --test-only), submitting
  # nothing; reports slurm_INDEX=ok|WHAT SLURM SAID or refused|WHAT SLURM SAID. Else, under
  # the cluster's lock, keep a job of ours that is queued or runs (kept|ID; MODE=renew: end
  # it first), or submit one and record its id (submitted|ID, or refused|WHAT SLURM SAID).
  # The job's comment says whose and which cluster's it is; its output goes to OUTPUT (a
  # path pattern of sbatch's; empty: $run/slurm/GROUP-%j.out, seen by the nodes with a shared
  # home; /dev/null without: the batch script writes its own, see slurm_job).
  index=$1 group=$2 job_name=$3 mode=$4 output=${5:-$run/slurm/$2-%j.out}
  shift 5
  slurm_need sbatch
  mkdir -p "$run/slurm" && chmod 700 "$run/slurm" && script=$(mktemp "$run/slurm/.job.XXXXXX") || exit 1
  base64 -d > "$script" || { rm -f "$script"; exit 1; }
  if [ "$mode" = test ]; then
    said=$(sbatch --test-only --job-name="$job_name" "$@" "$script" 2>&1) && verdict=ok || verdict=refused
    rm -f "$script"
    echo "slurm_$index=$verdict|$(slurm_line "$said")"
    return
  fi
  # Only now: a large here-document is written by a child of this shell, which holds what
  # this shell held then (an earlier step's lock) until the data is read.
  lock
  slurm_locked=yes  # held till the script ends: slurm_cancel (MODE=renew) keeps it so
  # What the keeper submits the group's next jobs with (keeper.py): this script and options.
  if ! { cp "$script" "$run/slurm/$group.script" && printf '%s\0' "$output" "$@" > "$run/slurm/$group.sbatch"; }; then
    rm -f "$script"
    exit 1
  fi
  # (the functions of a shell share their variables: those below set job, state, now, tries)
  if [ "$mode" = renew ]; then  # the job of an earlier controller, whose engines cannot reach this one
    slurm_cancel "$index" "$group" "$job_name"
    slurm_cancelled "$index" "$group" "$job_name" >/dev/null
  fi
  found=$(slurm_ours "$group" "$job_name") || { rm -f "$script"; exit 1; }
  state=$(printf '%s\n' "$found" | cut -d'|' -f2)
  if [ -n "$found" ] && slurm_active "$state"; then
    rm -f "$script"
    exec 9>&-
    if [ "$mode" = renew ]; then
      echo "slurm_$index=refused|job ${found%%|*} of an earlier controller is still $state"
    else
      echo "slurm_$index=kept|${found%%|*}"
    fi
    return
  fi
  said=$(sbatch --parsable --job-name="$job_name" --output="$output" \
    --comment="ipp-cluster $name $group of $(id -un)@$(uname -n)" "$@" "$script" 2>&1)
  status=$?
  rm -f "$script"
  id=$(printf '%s\n' "$said" | tail -n 1 | cut -d';' -f1)
  case $status$id in
    0*[!0-9]* | 0) echo "slurm_$index=refused|$(slurm_line "$said")" ;;
    0*) printf '%s\n' "$id" > "$run/slurm/$group.job" && echo "slurm_$index=submitted|$id" ;;
    *) echo "slurm_$index=refused|$(slurm_line "$said")" ;;
  esac
  exec 9>&-
}

slurm_jobs() {  # slurm_jobs INDEX GROUP JOB_NAME: report GROUP's job and what it holds on its nodes
  # slurm_INDEX=ID|STATE|REASON|LEFT|NODES|START|NAME|USER|NODES/CPU_IDS/GRES;...|BATCH/ADDRESS|
  # STEPS|NODE=ADDRESS,...|OUTPUT (empty: no job of ours): from scontrol's detail, which CPUs (and
  # GPUs) on which nodes, and the node that runs the batch script with the address Slurm
  # reaches it at; then how many job steps run (the engines' step, if any: none while the
  # job is held); then the address Slurm reaches each of its nodes at; then the file that
  # sbatch writes the job's output to with a shared home (slurm_submit's default OUTPUT).
  slurm_need squeue
  job=$(slurm_ours "$2" "$3") || exit 1
  holds='' batch='' steps='' addresses=''
  nodes=$(printf '%s\n' "$job" | cut -d'|' -f5)
  case $nodes in
    '' | '(null)') ;;
    *) addresses=$(scontrol show node -o "$nodes" 2>/dev/null | awk '{
         name = ""; address = ""
         for (i = 1; i <= NF; i++) {
           if ($i ~ /^NodeName=/) name = substr($i, 10)
           else if ($i ~ /^NodeAddr=/) address = substr($i, 10)
         }
         if (name != "") printf "%s=%s,", name, address }') ;;
  esac
  if [ -n "$job" ]; then
    detail=$(scontrol show job -d "${job%%|*}" 2>/dev/null)
    holds=$(printf '%s\n' "$detail" | awk '{
      nodes = ""; cpus = ""; gres = ""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Nodes=/) nodes = substr($i, 7)
        else if ($i ~ /^CPU_IDs=/) cpus = substr($i, 9)
        else if ($i ~ /^GRES=/) gres = substr($i, 6)
      }
      if (nodes != "" && cpus != "") printf "%s/%s/%s;", nodes, cpus, gres }')
    batch=$(printf '%s\n' "$detail" | tr ' ' '\n' | sed -n 's/^BatchHost=//p' | head -n 1)
    case $batch in
      ''|'(null)') batch= ;;
      *) batch="$batch/$(printf '%s\n' "$addresses" | tr ',' '\n' | awk -F= -v node="$batch" '$1 == node {
           print $2; exit }')" ;;
    esac
    steps=$(squeue -h -s -j "${job%%|*}" -o %i 2>/dev/null | grep -c "^${job%%|*}\.[0-9][0-9]*$") || true
  fi
  echo "slurm_$1=$job${job:+|$holds|$batch|$steps|$addresses|$run/slurm/$2-${job%%|*}.out}"
}

slurm_cancel() {  # slurm_cancel INDEX GROUP JOB_NAME: end GROUP's job, if it is ours and holds nodes
  # Its steps get SIGTERM: each node's supervisor stops its engines. Does not wait: see
  # slurm_cancelled, which follows it once every job was told. The group's other jobs (the
  # keeper's, recorded in GROUP+ID.job) end too. The cluster's lock is held until the
  # script ends, so that the keeper (keeper.py) does not take a job ended here for one to
  # replace before slurm_cancelled removes its record.
  slurm_need scancel
  [ -n "${slurm_locked:-}" ] || { lock; slurm_locked=yes; }
  for record in "$run/slurm/$2+"*.job; do
    [ -f "$record" ] || continue
    other=${record##*/}
    (slurm_cancel "$1" "${other%.job}" "$3") || true
  done
  job=$(slurm_ours "$2" "$3") || exit 1
  if [ -n "$job" ] && slurm_active "$(printf '%s\n' "$job" | cut -d'|' -f2)"; then
    scancel "${job%%|*}" 2>/dev/null || true
  fi
}

slurm_cancelled() {  # slurm_cancelled INDEX GROUP JOB_NAME: wait until GROUP's job holds no node
  # Reports slurm_INDEX=ID|STATE once it is so (the record goes), ID|STATE|still STATE after
  # 60 s (the record stays), or empty when there was no job of ours.
  job=$(slurm_ours "$2" "$3") || exit 1
  state=$(printf '%s\n' "$job" | cut -d'|' -f2)
  tries=0
  while [ -n "$job" ] && slurm_active "$state" && [ "$tries" -lt 300 ]; do
    sleep 0.2
    tries=$((tries + 1))
    # squeue that cannot answer for a moment: the job is as it was
    if now=$(slurm_ours "$2" "$3"); then state=$(printf '%s\n' "$now" | cut -d'|' -f2); fi
  done
  if [ -n "$job" ] && slurm_active "$state"; then
    echo "slurm_$1=${job%%|*}|$state|still $state after 60 s"
    return
  fi
  rm -f "$run/slurm/$2.job"
  echo "slurm_$1=${job%%|*}${job:+|$state}"
}

slurm_cancel_all() {  # slurm_cancel_all: end every job this cluster recorded here (see slurm_cancel)
  # for cluster.down, before the controller stops; slurm_cancelled_all waits for them after.
  # Every record counts, also of an allocation renamed or removed from the inventory since.
  # Neither fails: a job that cannot be ended is reported, and the stop of the rest goes on.
  for record in "$run"/slurm/*.job; do
    [ -f "$record" ] || continue
    [ -n "${slurm_locked:-}" ] || { lock; slurm_locked=yes; }  # each slurm_cancel's subshell shares it
    group=${record##*/}
    group=${group%.job}
    (slurm_cancel 0 "$group" "ipp-$name-${group%%+*}") || true  # said why; the stop goes on
  done
}

slurm_cancelled_all() {  # slurm_cancelled_all: wait for the jobs slurm_cancel_all ended
  # Reports, for the Nth record, slurm_group_N=GROUP and slurm_N= (see slurm_cancelled).
  count=0
  for record in "$run"/slurm/*.job; do
    [ -f "$record" ] || continue
    group=${record##*/}
    group=${group%.job}
    echo "slurm_group_$count=$group"
    (slurm_cancelled "$count" "$group" "ipp-$name-${group%%+*}") \
      || echo "slurm_$count=?|?|Slurm cannot be asked (the job may run: fab cluster.down again)"
    count=$((count + 1))
  done
}

slurm_restart() {  # slurm_restart INDEX GROUP JOB_NAME: its engines anew, in the same job
  # The job's batch script gets SIGUSR1 (see slurm_job): the step that runs the supervisors
  # ends, and a new one starts them. Reports slurm_INDEX=ID|RUNNING, or the job's state when
  # it does not run (nothing is sent), or empty when there is no job of ours.
  slurm_tell USR1 "$@"
}

slurm_hold() {  # slurm_hold INDEX GROUP JOB_NAME: its engines stop, the job runs on
  # The job's batch script gets SIGUSR2 (see slurm_job): the step that runs the supervisors
  # ends, and none starts until slurm_restart. Reports as slurm_restart does.
  slurm_tell USR2 "$@"
}

slurm_tell() {  # slurm_tell SIGNAL INDEX GROUP JOB_NAME: SIGNAL to GROUP's running job's batch script
  slurm_need scancel
  job=$(slurm_ours "$3" "$4") || exit 1
  state=$(printf '%s\n' "$job" | cut -d'|' -f2)
  [ "$state" != RUNNING ] || scancel --batch --signal="$1" "${job%%|*}" || state="signal failed"
  echo "slurm_$2=${job%%|*}${job:+|$state}"
}
