# shellcheck shell=sh
# shellcheck disable=SC2154  # name, bin, python: set by setup() in lib.sh

facts() {  # facts PORT GPUS ENGINES INTERFACE LOW-HIGH < VERSIONS_PY: what cluster.info shows
  # and cluster.check judges.
  # Reports cores=, mem_total_kb=, mem_available_kb=, load=, users=, screen= (and
  # screen_version=, the first line of screen -v), env_exists= (CLUSTER_ENV is a folder)
  # and, when not, env_siblings= (the Python environments next to it) and python3= (the
  # version of the python3 that cluster.install would make it with), missing= (programs
  # missing from CLUSTER_ENV), python=, ipyparallel=, jupyter_server=, open_files_hard= (the hard limit of open files, to
  # which the controller raises its own), gpus= (the GPUs nvidia-smi lists, whatever
  # the inventory says: 4 x MODEL), engines= (how many engines start_engines would
  # start, from the inventory's ENGINES and GPUS: see plan_engines in lib.sh) or, when
  # GPUS names GPUs that nvidia-smi lacks, gpu_problem=;
  # with PORT, port_user= when another program than this cluster's Jupyter listens
  # there (the name of its user); with INTERFACE (CONTROLLER_INTERFACE), interface_address=
  # (this host's address there: see lib.sh) and ipv4_addresses=; with LOW-HIGH
  # (CONTROLLER_PORTS), ports_taken= while this cluster's controller does not run. The
  # user's SETUP runs first.
  user_env
  echo "cores=$(nproc)"
  table=$(gpu_table)
  # shellcheck disable=SC2016  # $3 is awk's
  echo "gpus=$(printf '%s\n' "$table" | awk -F', *' 'NF > 1 { model[$3]++ }
    END { for (m in model) { printf "%s%d x %s", sep, model[m], m; sep = ", " } }')"
  if plan=$( (plan_engines "${3:-}" 1 "$2" && echo "$count") 2>&1); then
    echo "engines=$plan"
  else
    echo "gpu_problem=$plan"
  fi
  awk '/^MemTotal:/ {print "mem_total_kb=" $2} /^MemAvailable:/ {print "mem_available_kb=" $2}' \
    /proc/meminfo
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC3045  # dash, bash, ksh and busybox sh all have ulimit -H
  echo "open_files_hard=$(ulimit -Hn)"
  echo "users=$(who 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')"
  if command -v screen >/dev/null; then
    echo screen=yes
    echo "screen_version=$(screen -v 2>/dev/null | head -n 1)"  # Screen version 4.09.00 (GNU) ...
  else
    echo screen=no
  fi
  if [ -n "$bin" ]; then
    env=${bin%/bin/}
    if [ -d "$env" ]; then
      echo env_exists=yes
    else  # a typo? name the environments next to where it should be
      echo env_exists=no
      echo "python3=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
      printf 'env_siblings='
      for sibling in "${env%/*}"/*/ "${env%/*}"/.[!.]*/; do
        [ -x "${sibling}bin/python" ] && printf '%s ' "${sibling%/}"
      done
      echo
    fi
  fi
  missing=
  for program in ipcontroller ipengine jupyter; do
    if [ -n "$bin" ]; then
      [ -x "$bin$program" ] || missing="$missing $program"
    else
      command -v "$program" >/dev/null || missing="$missing $program"
    fi
  done
  echo "missing=$missing"
  if [ -n "${4:-}" ]; then
    echo "interface_address=$(interface_address "$4")"
    echo "ipv4_addresses=$(ipv4_addresses)"
  fi
  if [ -n "${5:-}" ] && ! sessions "$name-controller" >/dev/null; then
    ports_taken "${5%-*}" "${5#*-}"
  fi
  if [ -n "${1:-}" ] && ! sessions "$name-jupyter" >/dev/null; then
    port_user "$1"
  fi
  if "$python" -c '' 2>/dev/null; then "$python" -; else echo python=; fi
}

ports_taken() {  # ports_taken LOW HIGH: report ports_taken= (PORT:USER ...), who listens there
  # shellcheck disable=SC2016  # awk's fields
  taken=$(ss -ltnHe "sport >= :$1 and sport <= :$2" 2>/dev/null | awk '{
      port = $4; sub(/.*:/, "", port); uid = 0  # ss names no uid for root sockets
      if (match($0, /uid:[0-9]+/)) uid = substr($0, RSTART + 4, RLENGTH - 4)
      print port, uid }' | sort -un | while read -r port owner; do
    user=$(getent passwd "$owner" | cut -d: -f1)
    printf '%s:%s ' "$port" "${user:-uid$owner}"
  done)
  echo "ports_taken=${taken% }"
}

port_user() {  # port_user PORT: report port_user= (who listens on TCP PORT), if anyone does
  listener=$(ss -ltnHe "sport = :$1" 2>/dev/null | head -n 1)
  [ -n "$listener" ] || return 0
  owner=$(printf '%s\n' "$listener" | sed -n 's/.*uid:\([0-9]*\).*/\1/p')
  owner=${owner:-0}  # ss names no uid for root's sockets
  user=$(getent passwd "$owner" | cut -d: -f1)
  echo "port_user=${user:-uid $owner}"
}

reach() {  # reach ADDRESS TIMEOUT PORT... < REACH_PY: report reached= and unreachable=
  # A TCP connect from here to each PORT of the controller's ADDRESS, all at once, each
  # given TIMEOUT s (shared/reach.py): what the engines of this host would connect to.
  user_env
  py=$python
  "$py" -c '' 2>/dev/null || py=python3
  "$py" - connect "$@"
}
