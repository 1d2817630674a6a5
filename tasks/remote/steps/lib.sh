# shellcheck shell=sh
# shellcheck disable=SC2034  # the variables setup() sets are read by the steps
#
# The library every step uses. `tasks.commands.script` sends it first on the
# standard input of `/bin/sh -s`, then the step files, then one call per step.
# Values come in as the arguments of those calls, never as text in this code.
#
# Every long-running program runs in its own detached, logged screen session and
# carries IPP_CLUSTER_TAG=<cluster>/<role> in its environment. A stop quits the
# role's sessions, then ends every process of this user that still carries the
# tag (found through /proc/PID/environ): that includes the children that leave
# the session, like each engine's KernelNanny, and what a crashed keeper left. Only this user's processes
# are ever looked at, also as root: another user's cluster of the same name on
# the same host is theirs.

# The controller drops an engine whose heart missed this many periods in a row.
HEARTBEAT_MISSES=5
# An engine ends after this many periods without the controller's ping, each checked
# every period + 0.5 s: 50 x 1.5 s = 75 s at the smallest period (1 s, see heartbeat()
# in tasks/commands/). A controller that crashes is started again at once,
# then after 1, 2, 4 and 8 s (the nanny gives up at the 6th crash in 5 min), and takes
# about 2 s to start (4 to 10 s on a loaded master): the longest gap without pings is
# about 8 + 10 = 18 s, which the engines outlast four times over. start_engines.sh
# gives it to every engine.
ENGINE_HEARTBEAT_MISSES=50

# The lines of a session's log that are not its program's: the one launch_header writes
# before each start, found by LAUNCH_HEADER followed by the session's name and $, and the
# nanny's (=== nanny DATE: TEXT), a restart among them found by NANNY_RESTART; both only at
# the start of a line (a program may log what a peer sent it, never a line start). Both are
# POSIX extended regular expressions and Python ones alike: tasks/remote/shared/screen_logs.py reads
# the logs with the same text.
LAUNCH_HEADER='^=== ([A-Z][a-z][a-z] .*): '
NANNY_RESTART='^=== nanny ([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]): restart: '

at_home() {  # at_home PATH: PATH, with a leading ~/ (CLUSTER_ENV=~/...) this host's $HOME
  # shellcheck disable=SC2088  # the ~ is the text the inventory holds: expanded here, never by eval
  case $1 in
    "~/"*) printf '%s\n' "$HOME/${1#"~/"}" ;;
    *) printf '%s\n' "$1" ;;
  esac
}

setup() {  # setup NAME PROFILE BIN TIMEOUT SETUP: the variables every step uses
  set -u
  umask 077
  name=$1 profile=$2 bin=$3 timeout=$4 user_setup=$5 user_env_done=
  bin=$(at_home "$bin")
  base="$HOME/.ipp-cluster/$name"
  run="$base/$(uname -n)"
  sec="${IPYTHONDIR:-$HOME/.ipython}/profile_$profile/security"
  engine_file="$sec/ipcontroller-engine.json"
  engine_state="${sec%/security}/log/engines.json"  # the hub's, read by ipcontroller --restore
  if [ -n "$bin" ]; then python="${bin}python"; else python=python3; fi
  uid=$(id -u)
}

interface_address() {  # interface_address SPEC: this host's first IPv4 address on the
  # interface SPEC (ib0), or in the network SPEC (10.0.0.0/8); nothing when none is
  # (CONTROLLER_INTERFACE). A veth's name in ip's listing (eth0@if5) is read without its peer.
  # shellcheck disable=SC2016  # awk's $2 and $4
  ip -o -4 addr show 2>/dev/null | awk -v spec="$1" '
    function number(dotted, part) {
      split(dotted, part, ".")
      return ((part[1] * 256 + part[2]) * 256 + part[3]) * 256 + part[4]
    }
    {
      name = $2; sub(/@.*/, "", name); split($4, mine, "/")
      if (index(spec, "/")) {
        split(spec, net, "/"); size = 2 ^ (32 - net[2])
        if (int(number(mine[1]) / size) == int(number(net[1]) / size)) { print mine[1]; exit }
      } else if (name == spec) { print mine[1]; exit }
    }'
}

ipv4_addresses() {  # ipv4_addresses: this host's IPv4 addresses, "NAME A.B.C.D/N, ..."
  # shellcheck disable=SC2016  # awk's $2 and $4
  ip -o -4 addr show 2>/dev/null | awk '{ name = $2; sub(/@.*/, "", name)
    printf "%s%s %s", sep, name, $4; sep = ", " }'
}

user_env() {  # user_env: run the user's SETUP here, once, as a login shell would, or fail
  # The steps that start a program call this first. SETUP is the inventory's own text
  # (`module load python/3.11`, `conda activate labenv`), reaching this shell as an
  # argument: it runs here, in this shell, after the system's profile (/etc/profile,
  # root's file, read by every sh login shell; it makes `module` exist), so that what it
  # exports reaches every program this script starts. Neither reads this script's
  # stdin. A SETUP that fails stops the script with its output, on one line.
  [ -n "$user_setup" ] && [ -z "$user_env_done" ] || return 0
  user_env_done=yes
  set +u  # profiles read unset variables
  # shellcheck disable=SC1091  # the system's profile, whatever it holds
  [ ! -r /etc/profile ] || . /etc/profile </dev/null >/dev/null 2>&1
  said=$(mktemp) || exit 1
  eval "$user_setup" </dev/null >"$said" 2>&1
  status=$?
  set -u
  if [ "$status" -ne 0 ]; then
    echo "SETUP failed (exit $status): $(tr -s '\n' ' ' < "$said" | cut -c1-400)" >&2
    rm -f "$said"
    exit 1
  fi
  rm -f "$said"
}

gpu_table() {  # gpu_table: INDEX, UUID, NAME, MEMORY_MIB of each GPU, a line each (nvidia-smi)
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits 2>/dev/null
}

plan_engines() {  # plan_engines COUNT THREADS GPUS: set count, threads and devices, or fail
  # GPUS: empty, auto (every GPU nvidia-smi lists) or indexes (0,2); devices holds
  # the chosen GPUs' UUIDs (an index where nvidia-smi gives none), one a line. COUNT
  # empty: one engine per GPU, else one per core. THREADS empty: this host's cores
  # divided among its engines, at least 1. The cores are $cores where it is set (a Slurm
  # node's CPUs of the job), else nproc's.
  count=$1 threads=$2 devices=''
  cores=${cores:-$(nproc)}
  if [ -n "$3" ]; then
    table=$(gpu_table)
    if [ "$3" = auto ]; then
      devices=$(printf '%s\n' "$table" | awk -F', *' 'NF > 1 {print $2}')
      if ! command -v nvidia-smi >/dev/null; then
        echo "gpus=auto but nvidia-smi is not on the PATH here" >&2
        exit 1
      elif [ -z "$devices" ]; then
        echo "gpus=auto but nvidia-smi lists no GPU here" >&2
        exit 1
      fi
    else
      for index in $(printf '%s\n' "$3" | tr ',' ' '); do
        uuid=$(printf '%s\n' "$table" | awk -F', *' -v i="$index" '$1 == i {print $2}')
        if [ -n "$table" ] && [ -z "$uuid" ]; then
          echo "gpus=$3: nvidia-smi lists no GPU $index here" >&2
          exit 1
        fi
        devices="$devices${devices:+
}${uuid:-$index}"
      done
    fi
  fi
  if [ -z "$count" ]; then
    if [ -n "$devices" ]; then count=$(printf '%s\n' "$devices" | wc -l); else count=$cores; fi
  fi
  if [ -z "$threads" ]; then
    threads=$((cores / count))
    [ "$threads" -ge 1 ] || threads=1
  fi
}

export_threads() {  # export_threads: $threads for the engines' thread pools, unless SETUP set them
  # OpenMP, MKL, OpenBLAS, numexpr and Accelerate: a value the user's SETUP exported wins.
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"
  export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$threads}"
  export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$threads}"
  export NUMEXPR_NUM_THREADS="${NUMEXPR_NUM_THREADS:-$threads}"
  export VECLIB_MAXIMUM_THREADS="${VECLIB_MAXIMUM_THREADS:-$threads}"
}

screens() {  # screens: PID NAME of each of this user's screen sessions, a line each
  # The one reading of `screen -ls` (a tab, PID.NAME, a tab, its state) in the shell.
  screen -ls 2>/dev/null | sed -n 's/^[[:space:]]*\([0-9][0-9]*\)\.\([^[:space:]]*\).*/\1 \2/p'
}

sessions() {  # sessions REGEX: the names of this user's screen sessions matching REGEX
  screens | cut -d' ' -f2 | grep -xE "$1"
}

tagged() {  # tagged ROLE: the pids of this user's processes that carry ROLE's tag
  # Root can read every environ: of the processes that carry the tag, keep those whose
  # real uid is this user's (their status file's Uid: line).
  # shellcheck disable=SC2016  # $2 is awk's
  grep -lzxF "IPP_CLUSTER_TAG=$name/$1" /proc/[0-9]*/environ 2>/dev/null \
    | sed 's|environ$|status|' | xargs -r awk -v uid="$uid" \
      '/^Uid:/ && $2 == uid { split(FILENAME, part, "/"); print part[3] }' 2>/dev/null
}

launch() {  # launch ROLE SESSION PROGRAM ARGS...: PROGRAM in a detached, logged, tagged screen
  # or fail with what screen said: it refuses to start anything when its folder of
  # sessions is not this user's (/run/screen/S-USER left by a removed user of the same
  # name, measured: "You are not the owner of ..."), and then nothing would ever start.
  role=$1 session=$2
  shift 2
  launch_header "$session" >> "$run/$session.log"
  said=$(screen -c "$run/screenrc" -dmS "$session" -L -Logfile "$run/$session.log" \
    env "IPP_CLUSTER_TAG=$name/$role" "$@" 2>&1 9>&-) || {  # the program must not hold the lock
    echo "screen could not start $session: $(printf '%s\n' "$said" | tr -s '\r\n' '  ' | sed 's/ *$//')" >&2
    exit 1
  }
}

launch_header() {  # launch_header SESSION: the line launch writes in SESSION's log before each start
  # on a line of its own, its date in the C locale (Thu Dec  3 07:07:13 UTC 2026): it begins
  # with a capital, where the nanny's lines have "nanny".
  printf '\n=== %s: %s\n' "$(LC_ALL=C date)" "$1"
}

lock() {  # lock: take this host's lock of the cluster (let it go with: exec 9>&-)
  mkdir -p "$run" && exec 9> "$run/lock"
  flock -w 60 9 || { echo "another fab held $run/lock for 60 s" >&2; exit 1; }
}

make_run_dir() {  # make_run_dir: create the run directory (0700), take the lock, ready screen
  mkdir -p "$run" && chmod 700 "$HOME/.ipp-cluster" "$base" "$run" || exit 1
  # What a release before the package ipp_remote unpacked here: no Python may import it
  # (Jupyter has this folder on its path)
  rm -rf "$run/python" "$run/__pycache__"; rm -f "$run"/*.py
  lock
  printf 'logfile flush 1\n' > "$run/screenrc"
  screen -wipe >/dev/null 2>&1
}

halt() {  # halt ROLE REGEX: quit the sessions matching REGEX, end every process of ROLE, report
  # A session's keeper (the nanny, the engines' supervisor) ends its programs in order on
  # screen's SIGHUP: it gets 10 s for that. What is left then (all of it, when a keeper
  # crashed) gets SIGTERM, a KernelNanny (an engine's, ipp-nanny-N, or the host's, ipp-nanny)
  # only once the rest had 5 s to end, as it ends by itself after it told the hub that its
  # engines are gone; what is left after that, 5 s later, SIGKILL.
  quit=
  for session in $(sessions "$2"); do screen -S "$session" -X quit >/dev/null 2>&1; quit=yes; done
  [ -z "$quit" ] || gone "$1" 100
  programs=$(for pid in $(tagged "$1"); do
    grep -qx 'ipp-nanny\(-[0-9]*\)\{0,1\}' "/proc/$pid/comm" 2>/dev/null || echo "$pid"
  done)
  # shellcheck disable=SC2086  # one word per pid
  [ -z "$programs" ] || { kill -TERM $programs 2>/dev/null; gone "$1" 50; }
  end_role "$1" 50
  echo "left_$1=$(tagged "$1" | wc -l)"
}

end_role() {  # end_role ROLE TENTHS: SIGTERM every process of ROLE, SIGKILL what is left TENTHS tenths of a second later
  # The shell's one "end, then kill after a grace period" (Python's: process_tree.Ending).
  pids=$(tagged "$1")
  # shellcheck disable=SC2086  # one word per pid
  [ -z "$pids" ] || { kill -TERM $pids 2>/dev/null; gone "$1" "$2"; }
  pids=$(tagged "$1")
  # shellcheck disable=SC2086
  [ -z "$pids" ] || { kill -KILL $pids 2>/dev/null; gone "$1" 2; }
}

gone() {  # gone ROLE TENTHS: wait until no process of ROLE is left, at most TENTHS tenths of a second
  tries=0
  while [ -n "$(tagged "$1")" ] && [ "$tries" -lt "$2" ]; do sleep 0.1; tries=$((tries + 1)); done
}

raise_open_files() {  # raise_open_files: this shell's soft limit of open files to the hard one
  # shellcheck disable=SC3045  # -H and -S: dash, bash, ksh and busybox sh all have them
  hard=$(ulimit -Hn)
  [ "$hard" != unlimited ] || hard=$(cat /proc/sys/fs/nr_open)
  # shellcheck disable=SC3045
  ulimit -Sn "$hard" 2>/dev/null || true
}

wait_file() {  # wait_file PATH SECONDS [GIVEUP]: succeed as soon as PATH is a non-empty file
  # fail after SECONDS, or as soon as the file GIVEUP exists
  tries=0
  while [ ! -s "$1" ]; do
    [ "$tries" -ge "$(($2 * 10))" ] && return 1
    [ -z "${3:-}" ] || [ ! -e "$3" ] || return 1
    sleep 0.1
    tries=$((tries + 1))
  done
}
