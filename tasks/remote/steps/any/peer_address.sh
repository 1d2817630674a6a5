# shellcheck shell=sh

peer_address() {  # peer_address: report peer_address=, where this SSH connection comes from
  # When fab runs on the master, that is the master as this engine host reaches it.
  echo "peer_address=$(printf '%s\n' "${SSH_CONNECTION:-}" | cut -d' ' -f1)"
}
