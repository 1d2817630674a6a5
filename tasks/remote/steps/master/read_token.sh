# shellcheck shell=sh
# shellcheck disable=SC2154  # run: set by setup() in lib.sh

read_token() {  # read_token: report Jupyter's token= (empty when there is none)
  # Each start of Jupyter makes its token, its stop removes it: without one, Jupyter
  # is not running, which the probe that follows says (tasks/steps/lifecycle.py).
  token_file="$run/jupyter.token"
  echo "token=$(cat "$token_file" 2>/dev/null)"
}
