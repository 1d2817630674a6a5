# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

host_status() {  # host_status COUNT: this user's cluster sessions here, and the engines expected
  # COUNT empty means one engine per core. Reports sessions=, expected=, restarts= (the
  # nannies' restarts since each engine's session began) and gaveup_N= for each engine
  # whose nanny gave up (see tasks/remote/nanny.py).
  echo "sessions=$(sessions "$name-(controller|jupyter|engine-[0-9]+)" | tr '\n' ' ')"
  echo "expected=${1:-$(nproc)}"
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
