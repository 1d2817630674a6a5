# shellcheck shell=sh
# shellcheck disable=SC2154  # uid: set by setup() in lib.sh

put_examples() {  # put_examples NOTEBOOK_DIR < BASE64_TAR_GZ: the example notebooks
  # Unpacked into NOTEBOOK_DIR/ipp-examples (default: the home), never overwriting a file.
  # The folder is made first (0700), then whatever is there is checked: one that is not
  # this user's (another user made it first, in a shared NOTEBOOK_DIR, even a moment
  # before), a link, or one that any other user may write to (its group too: a primary
  # group such as "users" is shared on many sites) is refused: its notebooks would be
  # offered to this user as the examples.
  folder="${1:-$HOME}/ipp-examples"
  mkdir -p "$(dirname "$folder")" || exit 1
  if ! mkdir -m 700 "$folder" 2>/dev/null && ! [ -e "$folder" ] && ! [ -L "$folder" ]; then
    mkdir -m 700 "$folder" || exit 1  # says why it cannot be made
  fi
  if [ -L "$folder" ] || ! [ -d "$folder" ]; then
    echo "$folder is not a folder: remove it, or choose another NOTEBOOK_DIR" >&2
    exit 1
  fi
  read -r owner mode <<END
$(stat -c '%u %a' "$folder")
END
  if [ "$owner" != "$uid" ]; then
    owner_name=$(getent passwd "$owner" | cut -d: -f1)
    echo "$folder belongs to ${owner_name:-uid $owner}, not" \
      "to you: its notebooks are not the examples; remove it, or choose another NOTEBOOK_DIR" >&2
    exit 1
  elif [ $((0$mode & 022)) != 0 ]; then
    echo "$folder is writable by other users (mode $mode): chmod go-w it, or remove it" >&2
    exit 1
  fi
  base64 -d | tar -xzf - --skip-old-files -C "$folder" || exit 1
}
