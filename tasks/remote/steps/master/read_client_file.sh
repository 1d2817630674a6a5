# shellcheck shell=sh
# shellcheck disable=SC2154  # sec: set by setup() in lib.sh

read_client_file() {  # read_client_file: report client_file= (the client connection file, base64)
  # For fab cluster.connect: it travels to the laptop on stdout, never on a command line.
  client_file="$sec/ipcontroller-client.json"
  [ -s "$client_file" ] || {
    echo "no $client_file: is the controller running? (fab master.start)" >&2
    exit 1
  }
  echo "client_file=$(base64 -w0 "$client_file")"
}
