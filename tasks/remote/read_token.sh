# shellcheck shell=sh
# shellcheck disable=SC2154  # run: set by setup() in lib.sh

read_token() {  # read_token: report Jupyter's token= (fails when the master never made one)
  token_file="$run/jupyter.token"
  [ -s "$token_file" ] || {
    echo "no Jupyter token in $token_file: is the master started?" >&2
    exit 1
  }
  echo "token=$(cat "$token_file")"
}
