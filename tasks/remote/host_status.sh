# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

host_status() {  # host_status COUNT GPUS: this user's cluster sessions here, and the engines expected
  # COUNT and GPUS: see plan_engines in lib.sh. Reports sessions=, expected= (or
  # plan_problem= when GPUS names GPUs this host lacks), threads= (what a running engine
  # has in OMP_NUM_THREADS), restarts= (the nannies' restarts since each engine's
  # session began), controller_restarts= and jupyter_restarts= (the same, with the
  # time of the last in controller_restarted= and jupyter_restarted=), and gaveup_N=,
  # gaveup_controller= and gaveup_jupyter= for each program whose nanny gave up (see
  # tasks/remote/nanny.py).
  echo "sessions=$(sessions "$name-(controller|jupyter|engine-[0-9]+)" | tr '\n' ' ')"
  plan=$( (plan_engines "$1" 1 "$2" && echo "$count") 2>&1)
  case $plan in
    '' | *[!0-9]*) echo "expected=0"; echo "plan_problem=$(printf '%s' "$plan" | tr '\n' ' ')" ;;
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
    echo "gaveup_${program##*-}=$(cat "$marker")"
  done
}

restarts() {  # restarts LOG: the nanny's restarts since the session's last start, a tab, the last's time
  # shellcheck disable=SC2016  # $0, $3 and $4 are awk's
  awk -v header="=== .*: $(basename "$1" .log)\$" \
    '$0 ~ header { n = 0; last = "" } / nanny .*: restart: / { n++; last = $3 " " substr($4, 1, length($4) - 1) }
     END { printf "%d\t%s\n", n, last }' "$1"
}
