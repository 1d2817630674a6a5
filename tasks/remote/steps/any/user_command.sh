# shellcheck shell=sh

user_command() {  # user_command COMMAND: run a user's COMMAND with sh, whatever the login shell
  user_env
  sh -c "$1"
}
