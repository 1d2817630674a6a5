# shellcheck shell=sh
# shellcheck disable=SC2154  # sec, engine_file: set by setup() in lib.sh

write_engine_file() {  # write_engine_file < BASE64: the master's connection file, written here 0600
  mkdir -p "$sec" && base64 -d > "$engine_file.new" && mv -f "$engine_file.new" "$engine_file" \
    || exit 1
}
