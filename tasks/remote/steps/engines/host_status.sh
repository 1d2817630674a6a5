# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

host_status() {  # host_status COUNT GPUS: this user's cluster sessions here, and the engines expected
  # COUNT and GPUS: see plan_engines in lib.sh. Reports sessions=, supervisor= (the state
  # the engines' supervisor writes, NAME-engines.json, while it runs; supervisor_ended=yes
  # when it ended without a stop, which removes that state), expected= (or
  # plan_problem= when GPUS names GPUs this host lacks, or SETUP fails with GPUS), threads= (what a
  # running engine has in OMP_NUM_THREADS), restarts= (the supervisor's restarts of the
  # engines since it started them), controller_restarts= and jupyter_restarts= (the same, with
  # the time of the last in controller_restarted= and jupyter_restarted=), and gaveup_N=
  # (engine N of the plan), gaveup_controller= and gaveup_jupyter= for each program whose
  # nanny or supervisor gave up (see tasks/remote/shared/nanny.py and supervisor.py).
  echo "sessions=$(sessions "$name-(controller|jupyter|engines)" | tr '\n' ' ')"
  if [ -s "$run/$name-engines.json" ]; then
    if [ -n "$(sessions "$name-engines")" ]; then
      echo "supervisor=$(tr -d '\n' < "$run/$name-engines.json")"
    else
      echo "supervisor_ended=yes"
    fi
  fi
  # Planned as start_engines plans; with GPUS, after the user's SETUP (`module load cuda`
  # may be what puts nvidia-smi on the PATH; without GPUS the plan needs nothing of it,
  # and a SETUP can take seconds), in a subshell: what SETUP exports ends there.
  plan=$( ({ [ -z "$2" ] || user_env; } && plan_engines "$1" 1 "$2" && echo "$count") 2>&1)
  case $plan in
    '' | *[!0-9]*)
      echo "expected=0"
      echo "plan_problem=$(printf '%s' "$plan" | tr '\n' ' ')"
      plan= ;;
    *) echo "expected=$plan" ;;
  esac
  engine=$(tagged engine | head -n 1)
  if [ -n "$engine" ]; then
    echo "threads=$(tr '\0' '\n' < "/proc/$engine/environ" 2>/dev/null | sed -n 's/^OMP_NUM_THREADS=//p')"
  fi
  restarts=0
  for log in "$run/$name"-engine-*.log; do
    [ -f "$log" ] || continue
    restarts=$((restarts + $(restarts "$log" | cut -f1)))
  done
  echo "restarts=$restarts"
  for program in controller jupyter; do
    [ -f "$run/$name-$program.log" ] || continue
    found=$(restarts "$run/$name-$program.log")
    echo "${program}_restarts=${found%%	*}"
    echo "${program}_restarted=${found#*	}"
  done
  for marker in "$run/$name"-*.gaveup; do
    [ -f "$marker" ] || continue
    program=${marker%.gaveup}
    program=${program##*-}
    case $program in  # an engine beyond the plan (engines=4 became 2) is none of this host's now
      controller | jupyter) ;;
      *) [ -z "$plan" ] || [ "$program" -le "$plan" ] || continue ;;  # no plan: every engine's
    esac
    echo "gaveup_$program=$(cat "$marker")"
  done
}

restarts() {  # restarts LOG: the nanny's restarts since the session's last start, a tab, the last's time
  # The lines of launch and of the nanny, found by LAUNCH_HEADER and NANNY_RESTART (lib.sh);
  # a restart's time is what NANNY_RESTART matched less "=== nanny " and ": restart: ".
  # shellcheck disable=SC2016  # $0 is awk's
  awk -v header="$LAUNCH_HEADER$(basename "$1" .log)\$" -v restart="$NANNY_RESTART" \
    '$0 ~ header { n = 0; last = ""; next }
     match($0, restart) { n++; last = substr($0, RSTART + 10, RLENGTH - 21) }
     END { printf "%d\t%s\n", n, last }' "$1"
}
