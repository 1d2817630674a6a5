# shellcheck shell=sh
# shellcheck disable=SC2154  # sec, engine_file: set by setup() in lib.sh

write_engine_file() {  # write_engine_file < BASE64: the master's connection file, written here 0600
  # Through a file of its own, so that hosts that do share a home never clash.
  mkdir -p "$sec" && new=$(mktemp "$engine_file.XXXXXX") && base64 -d > "$new" \
    && mv -f "$new" "$engine_file" || exit 1
}
