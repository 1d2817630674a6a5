# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

host_status() {  # host_status COUNT GPUS: this user's cluster sessions here, and the engines expected
  # COUNT and GPUS: see plan_engines in lib.sh. Reports sessions=, expected= (or
  # plan_problem= when GPUS names GPUs this host lacks), threads= (what a running engine
  # has in OMP_NUM_THREADS), restarts= (the nannies' restarts since each engine's
  # session began) and gaveup_N= for each engine whose nanny gave up (see
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
    session=$(basename "$log" .log)
    found=$(awk -v header="=== .*: $session\$" \
      '$0 ~ header { n = 0 } / nanny .*: restart: / { n++ } END { print n + 0 }' "$log")
    restarts=$((restarts + found))
  done
  echo "restarts=$restarts"
  for marker in "$run/$name"-engine-*.gaveup; do
    [ -f "$marker" ] || continue
    number=${marker%.gaveup}
    echo "gaveup_${number##*-}=$(cat "$marker")"
  done
}
