# shellcheck shell=sh
# shellcheck disable=SC2154  # engine_file, name, python: set by setup() in lib.sh

read_engine_file() {  # read_engine_file: report engine_file= (the connection file, base64)
  # For hosts without a shared home: it travels back to fab on stdout and goes to each
  # engine host on the stdin of write_engine_file. It holds the key that signs every
  # message, so it is never on a command line.
  echo "engine_file=$(base64 -w0 "$engine_file")"
}

controller_ports() {  # controller_ports < REACH_PY: report controller_ports= (ADDRESS PORT...)
  # The address and the ports that the engines connect to, read by shared/reach.py from the
  # engine connection file (its key stays here), while the controller's session runs;
  # empty when it does not: its ports are drawn at its start, and nothing listens there yet.
  if sessions "$name-controller" >/dev/null && [ -s "$engine_file" ] && "$python" -c '' 2>/dev/null; then
    "$python" - ports "$engine_file" || echo controller_ports=
  else
    echo controller_ports=
  fi
}
