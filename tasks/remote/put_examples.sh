# shellcheck shell=sh
# shellcheck disable=SC2154  # uid: set by setup() in lib.sh

put_examples() {  # put_examples NOTEBOOK_DIR < BASE64_TAR_GZ: the example notebooks
  # Unpacked into NOTEBOOK_DIR/ipp-examples (default: the home), never overwriting a file.
  # A folder there that is not this user's (another user made it first, in a shared
  # NOTEBOOK_DIR), a link, or one that others may write to is refused: its notebooks
  # would be offered to this user as the examples.
  folder="${1:-$HOME}/ipp-examples"
  if [ -L "$folder" ] || { [ -e "$folder" ] && ! [ -d "$folder" ]; }; then
    echo "$folder is not a folder: remove it, or choose another NOTEBOOK_DIR" >&2
    exit 1
  fi
  if [ -d "$folder" ]; then
    read -r owner group mode <<END
$(stat -c '%u %g %a' "$folder")
END
    others=$((0$mode & 2)) grouped=$((0$mode & 16))
    if [ "$owner" != "$uid" ]; then
      owner_name=$(getent passwd "$owner" | cut -d: -f1)
      echo "$folder belongs to ${owner_name:-uid $owner}, not" \
        "to you: its notebooks are not the examples; remove it, or choose another NOTEBOOK_DIR" >&2
      exit 1
    elif [ "$others" != 0 ] || { [ "$grouped" != 0 ] && [ "$group" != "$(id -g)" ]; }; then
      echo "$folder is writable by other users (mode $mode): chmod go-w it, or remove it" >&2
      exit 1
    fi
  fi
  mkdir -p "$folder" && base64 -d | tar -xzf - --skip-old-files -C "$folder" || exit 1
}
