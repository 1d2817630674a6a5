# shellcheck shell=sh
# shellcheck disable=SC2154  # engine_file: set by setup() in lib.sh

read_engine_file() {  # read_engine_file: report engine_file= (the connection file, base64)
  # For hosts without a shared home: it travels back to fab on stdout and goes to each
  # engine host on the stdin of write_engine_file. It holds the key that signs every
  # message, so it is never on a command line.
  echo "engine_file=$(base64 -w0 "$engine_file")"
}
