# shellcheck shell=sh

put_examples() {  # put_examples NOTEBOOK_DIR < BASE64_TAR_GZ: the example notebooks
  # Unpacked into NOTEBOOK_DIR/ipp-examples (default: the home), never overwriting a file.
  folder="${1:-$HOME}/ipp-examples"
  mkdir -p "$folder" && base64 -d | tar -xzf - --skip-old-files -C "$folder" || exit 1
}
