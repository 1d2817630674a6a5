# shellcheck shell=sh
# shellcheck disable=SC2154  # name: set by setup() in lib.sh

host_status() {  # host_status COUNT: this user's cluster sessions here, and the engines expected
  # COUNT empty means one engine per core. Reports sessions= and expected=.
  echo "sessions=$(sessions "$name-(controller|jupyter|engine-[0-9]+)" | tr '\n' ' ')"
  echo "expected=${1:-$(nproc)}"
}
