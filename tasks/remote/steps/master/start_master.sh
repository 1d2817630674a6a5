# shellcheck shell=sh
# shellcheck disable=SC2154  # name, run, bin, sec, engine_file, timeout: set by setup() in lib.sh

start_master() {  # start_master ADDRESS JUPYTER_PORT NOTEBOOK_DIR ENCRYPT PERIOD_MS REGISTRATION_S PORTS
  # Start what is missing of the controller and Jupyter, then wait for the controller.
  # The controller listens on ADDRESS alone, where the engines reach it; "ssh" means
  # the address that this SSH connection came in on (see tasks/steps/address.py), and
  # interface=SPEC this host's first address on the interface or network SPEC.
  # The controller writes its engine connection file when it is ready; a stale one is
  # removed first, so that waiting for the file means waiting for this controller.
  # Jupyter listens on 127.0.0.1 only and reads its token from a 0600 file made here
  # (JUPYTER_TOKEN_FILE) for each new Jupyter and removed by its stop (stop_master.sh),
  # so the token is on no command line; its kernels get the
  # cluster's profile in IPP_PROFILE. Both start with their soft limit of open files
  # raised to the hard limit (the controller holds about 2.4 per engine). PERIOD_MS and
  # REGISTRATION_S: the heartbeat's period and the registration timeout, sized to the
  # cluster by tasks/commands/master.py. Both run under the nanny (shared/nanny.py of the
  # package ipp_remote, unpacked from stdin into the run directory with the controller,
  # master/, and what Jupyter loads, jupyter/: the module ipp_cluster of the notebooks and
  # the dashboard; Jupyter, with the run directory on its path, loads both as server
  # extensions, and every IPython kernel loads ipp_cluster, so that a plain ipp.Client()
  # there is ipp_cluster's): the controller starts again with --restore after a crash,
  # Jupyter on the same port with the same token. A controller or Jupyter whose nanny
  # waits out a back-off is running: nothing more starts. PORTS: the controller's pool
  # (CONTROLLER_PORTS less Jupyter's port, as ipcontroller's --ports reads it: 20001-20019),
  # or empty for ports of its own choosing (see master/port_pool.py). Reports controller=
  # and jupyter= (started or running), controller_address= and token=.
  address=$1 port=$2 notebook_dir=${3:-$HOME} encrypt=$4 period=$5 registration=$6 ports=${7:-}
  user_env
  raise_open_files
  case $address in
    interface=*)  # CONTROLLER_INTERFACE: this host's address on that interface or network
      spec=${address#interface=}
      address=$(interface_address "$spec")
      if [ -z "$address" ]; then
        echo "CONTROLLER_INTERFACE=$spec matches no IPv4 address of this host, which has" \
          "$(ipv4_addresses): name one of its interfaces, or a network of one of those" \
          "addresses, in cluster.env" >&2
        exit 1
      fi ;;
  esac
  if [ "$address" = ssh ]; then
    address=$(printf '%s\n' "${SSH_CONNECTION:-}" | cut -d' ' -f3)
    address=${address#::ffff:}  # IPv4 seen by an IPv6 socket
    case $address in  # "ssh" is asked for only when engines run elsewhere
      127.0.0.1)
        echo "SSH came in on the master's loopback ($address: through a port forward?)," \
          "which the engine hosts cannot reach: set CONTROLLER_ADDRESS in cluster.env" \
          "to the master's address on the engines' network" >&2
        exit 1 ;;
    esac
  fi
  case $address in
    *.*.*.*) ;;
    *) echo "cannot tell the master's IPv4 address for the engines (SSH came in on" \
         "'$address'): set CONTROLLER_ADDRESS in cluster.env" >&2
       exit 1 ;;
  esac
  make_run_dir
  base64 -d | tar -xzf - -C "$run" || exit 1
  if sessions "$name-controller" >/dev/null; then
    echo controller=running
    address=$(cat "$run/controller.address" 2>/dev/null || echo "$address")
  else
    # A new controller: no connection files, engines or tasks of an earlier one.
    rm -f "$engine_file" "$sec/ipcontroller-client.json" "$engine_state" \
      "$run/$name-controller.gaveup" "$run/tasks-in-flight."*
    rm -rf "$run/hosts"  # the engine hosts' reports to the last one (host_inbox.py)
    curve=
    [ "$encrypt" = yes ] && curve=IPP_ENABLE_CURVE=1
    pool=
    case $ports in
      '') ;;
      *[!0-9,-]*) echo "bad port pool '$ports'" >&2; exit 1 ;;
      *) pool="--IPController.ports=$ports" ;;
    esac
    echo "$address" > "$run/controller.address"
    launch controller "$name-controller" env $curve "$python" "$run/ipp_remote" shared.nanny \
      controller "$run/$name-controller.gaveup" -- \
      "$python" "$run/ipp_remote" master.controller "$run" \
      "--profile=$profile" "--ip=$address" "--location=$address" \
      "--HeartMonitor.period=$period" \
      "--HeartMonitor.max_heartmonitor_misses=$HEARTBEAT_MISSES" \
      "--IPController.registration_timeout=$registration" ${pool:+"$pool"}
    echo controller=started
  fi
  echo "controller_address=$address"
  token_file="$run/jupyter.token"
  if sessions "$name-jupyter" >/dev/null; then
    echo jupyter=running
  else
    # A token of its own for each new Jupyter: one that another program ever received
    # (while this Jupyter did not hold the port) logs into no later Jupyter.
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$token_file"
    root_flag=
    [ "$uid" != 0 ] || root_flag=--allow-root  # Jupyter refuses to run as root without it
    echo "$port" > "$run/jupyter.port"  # what the probe compares with JUPYTER_PORT
    rm -f "$run/$name-jupyter.gaveup"
    launch jupyter "$name-jupyter" env "JUPYTER_TOKEN_FILE=$token_file" "IPP_PROFILE=$profile" \
      "PYTHONPATH=$run${PYTHONPATH:+:$PYTHONPATH}" "IPP_CLUSTER_RUN=$run" \
      "IPP_CLUSTER_NAME=$name" \
      "$python" "$run/ipp_remote" shared.nanny jupyter "$run/$name-jupyter.gaveup" -- \
      "${bin}jupyter" server --no-browser --ip=127.0.0.1 "--port=$port" \
      --ServerApp.port_retries=0 --ServerApp.default_url=/tree \
      '--ServerApp.jpserver_extensions={"ipp_remote.jupyter.dashboard.extension": True, "ipp_remote.jupyter.ipp_cluster": True}' \
      "--ServerApp.root_dir=$notebook_dir" $root_flag
    echo jupyter=started
  fi
  echo "token=$(cat "$token_file")"
  exec 9>&-
  wait_file "$engine_file" "$timeout" "$run/$name-controller.gaveup" || {
    if [ -s "$run/$name-controller.gaveup" ]; then
      echo "the controller's nanny $(cat "$run/$name-controller.gaveup"); see $run/$name-controller.log" >&2
    else
      echo "the controller wrote no connection file in $timeout s; see $run/$name-controller.log" >&2
    fi
    exit 1
  }
}
