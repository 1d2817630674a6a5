"""
Build the shell commands that run on the hosts: pure functions from settings to strings.

Every value that enters a command is quoted here, and only here, with
`shlex.quote`. A command is made of *parts* (shell snippets, one per step) that
`script` joins behind one shared prelude and wraps in ``sh -c``, so that one SSH
round trip does everything one host needs, whatever the user's login shell is.

Commands report on stdout as ``key=value`` lines (see `tasks.facts`), and fail
with a message on stderr and a non-zero exit.

Each long-running program runs in its own detached screen session with a log
file in the host's run directory, and carries the environment variable
``IPP_CLUSTER_TAG=<cluster>/<role>``. Stopping a role quits its sessions and then
ends every process that carries its tag, found through ``/proc/*/environ``: that
includes children that left the session, such as the "nanny" each ``ipengine``
starts with ``start_new_session=True``, which survive a plain ``screen -X quit``.
"""

import json
import shlex

from .probe import PROBE_SOURCE

#: The variable that marks every process of a cluster role on a host.
TAG = "IPP_CLUSTER_TAG"

#: Heartbeat of the controller: a dead engine is dropped after PERIOD * MISSES ms.
HEARTBEAT_PERIOD_MS = 1000
HEARTBEAT_MISSES = 5

# Shell functions shared by every command. Values come in through the variables
# that `prelude` sets, never by formatting text into these lines.
_FUNCTIONS = r"""
sessions() {  # sessions REGEX: print the names of this user's screen sessions matching REGEX
  screen -ls 2>/dev/null | sed -n 's/^[[:space:]]*[0-9][0-9]*\.\([^[:space:]]*\).*/\1/p' | grep -xE "$1"
}
tagged() {  # tagged ROLE: print the pids of the processes that carry ROLE's tag
  grep -lzxF "IPP_CLUSTER_TAG=$name/$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
}
launch() {  # launch ROLE SESSION PROGRAM ARGS...: run PROGRAM in a detached, logged, tagged screen
  role=$1 session=$2; shift 2
  printf '\n=== %s: %s\n' "$(date)" "$session" >> "$run/$session.log"
  screen -c "$run/screenrc" -dmS "$session" -L -Logfile "$run/$session.log" \
    env "IPP_CLUSTER_TAG=$name/$role" "$@" 9>&-  # the program must not hold the lock
}
lock() {  # lock: take the host's lock of this cluster (unlock: exec 9>&-)
  mkdir -p "$run" && exec 9> "$run/lock"
  flock -w 60 9 || { echo "another fab held $run/lock for 60 s" >&2; exit 1; }
}
halt() {  # halt ROLE REGEX: quit the sessions matching REGEX, end every process of ROLE, report
  for session in $(sessions "$2"); do screen -S "$session" -X quit >/dev/null 2>&1; done
  pids=$(tagged "$1"); [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
  tries=0
  while [ -n "$(tagged "$1")" ] && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
  pids=$(tagged "$1"); [ -z "$pids" ] || { kill -KILL $pids 2>/dev/null; sleep 0.2; }
  echo "left_$1=$(tagged "$1" | wc -l)"
}
wait_file() {  # wait_file PATH SECONDS: succeed as soon as PATH is a non-empty file
  tries=0
  while [ ! -s "$1" ]; do
    [ "$tries" -ge "$(($2 * 10))" ] && return 1
    sleep 0.1; tries=$((tries + 1))
  done
}
"""


def q(value):
    """Quote one value for the shell."""
    return shlex.quote(str(value))


def prelude(settings):
    """Set the variables every part uses: cluster name, profile, run and security dirs."""
    return "\n".join([
        "set -u",
        "umask 077",
        f"name={q(settings.cluster_name)}",
        f"profile={q(settings.ipp_profile)}",
        f"bin={q(settings.bin_prefix)}",
        'base="$HOME/.ipp-cluster/$name"',
        'run="$base/$(uname -n)"',
        'sec="${IPYTHONDIR:-$HOME/.ipython}/profile_$profile/security"',
        'engine_file="$sec/ipcontroller-engine.json"',
        _FUNCTIONS,
    ])


def script(settings, *parts):
    """
    Join *parts* behind the prelude into one command line for one host.

    The ``sh -c`` makes the command independent of the login shell, and
    ``env -u`` keeps a tag that the caller may carry (say, a terminal inside the
    cluster's Jupyter) off the processes of the command itself.
    """
    body = "\n".join([prelude(settings), *parts])
    return f"env -u {TAG} sh -c {q(body)}"


def make_run_dir():
    """
    Create the host's run directory (mode 0700) and take the host's lock.

    Every part that looks at what runs and then starts or stops something holds
    the lock, and lets it go before it waits: two ``fab`` runs at once take turns
    on each host, each seeing what the other started, and a stop never ends up
    before a start that was under way.
    """
    return "\n".join([
        'mkdir -p "$run" && chmod 700 "$HOME/.ipp-cluster" "$base" "$run" || exit 1',
        "lock",
        "printf 'logfile flush 1\\n' > \"$run/screenrc\"",
        "screen -wipe >/dev/null 2>&1",
    ])


def controller_env(settings):
    """Environment of ``ipcontroller``: CurveZMQ encryption when ``ENCRYPT=yes``."""
    return ["IPP_ENABLE_CURVE=1"] if settings.encrypt else []


def controller_args(settings, location):
    """The ``ipcontroller`` arguments: listen where engines can reach it, at *location*."""
    ip = "127.0.0.1" if location in ("127.0.0.1", "localhost") else "*"
    return [
        f"--profile={settings.ipp_profile}",
        f"--ip={ip}",
        f"--location={location}",
        f"--HeartMonitor.period={HEARTBEAT_PERIOD_MS}",
        f"--HeartMonitor.max_heartmonitor_misses={HEARTBEAT_MISSES}",
    ]


def put_examples():
    """Unpack the example notebooks (a base64 tar.gz on stdin) into ``$notebook_dir/ipp-examples``,
    never overwriting a file that is already there."""
    return ('mkdir -p "$notebook_dir/ipp-examples" && base64 -d'
            ' | tar -xzf - --skip-old-files -C "$notebook_dir/ipp-examples" || exit 1')


def start_master(settings, location, examples=False):
    """
    Start what is missing of the controller and Jupyter, then wait for the controller.

    The controller writes its engine connection file when it is ready; a stale one
    is removed first, so that waiting for the file means waiting for this controller.
    Jupyter starts at the same time, listening on 127.0.0.1 only; its token is made
    on the host into a 0600 file that Jupyter reads through ``JUPYTER_TOKEN_FILE``,
    so it is on no command line; its kernels get the cluster's profile in
    ``IPP_PROFILE``. With *examples*, the example notebooks come on stdin (see
    `put_examples`). Reports ``controller=`` and ``jupyter=`` (started or running)
    and ``token=``.
    """
    environment = "".join(q(pair) + " " for pair in controller_env(settings))
    controller = " ".join(q(arg) for arg in controller_args(settings, location))
    notebook_dir = q(settings.notebook_dir) if settings.notebook_dir else '"$HOME"'
    jupyter = " ".join(q(arg) for arg in [
        "server", "--no-browser", "--ip=127.0.0.1", f"--port={settings.jupyter_port}",
        "--ServerApp.port_retries=0", "--ServerApp.default_url=/tree",
    ])
    timeout = int(settings.engine_timeout)
    return "\n".join([
        make_run_dir(),
        'if sessions "$name-controller" >/dev/null; then echo controller=running; else',
        '  rm -f "$engine_file" "$sec/ipcontroller-client.json"',
        f'  launch controller "$name-controller" env {environment}"${{bin}}ipcontroller" {controller}',
        "  echo controller=started",
        "fi",
        f"notebook_dir={notebook_dir}",
        *([put_examples()] if examples else []),
        'token_file="$run/jupyter.token"',
        '[ -s "$token_file" ] || od -An -N24 -tx1 /dev/urandom | tr -d " \\n" > "$token_file"',
        'if sessions "$name-jupyter" >/dev/null; then echo jupyter=running; else',
        '  root_flag=; [ "$(id -u)" != 0 ] || root_flag=--allow-root  # Jupyter refuses root else',
        '  launch jupyter "$name-jupyter" env "JUPYTER_TOKEN_FILE=$token_file" "IPP_PROFILE=$profile" \\',
        f'    "${{bin}}jupyter" {jupyter} --ServerApp.root_dir="$notebook_dir" $root_flag',
        "  echo jupyter=started",
        "fi",
        'echo "token=$(cat "$token_file")"',
        "exec 9>&-",
        f'wait_file "$engine_file" {timeout} || {{ echo "the controller wrote no connection'
        f' file in {timeout} s; see $run/$name-controller.log" >&2; exit 1; }}',
        *([] if settings.shared_home else [read_engine_file()]),
    ])


def read_engine_file():
    """
    Print the engine connection file as ``engine_file=<base64>``, for hosts without a shared home.

    It travels back over SSH on stdout and goes to each engine host on the stdin
    of `start_engines`: it holds the key that signs every message, so it is never
    on a command line nor, even for a moment, in a file that others can read.
    """
    return 'echo "engine_file=$(base64 -w0 "$engine_file")"'


def stop_master():
    """Stop the controller and Jupyter, and remove the controller's connection files."""
    return "\n".join([
        "lock",
        'halt controller "$name-controller"',
        'halt jupyter "$name-jupyter"',
        'rm -f "$engine_file" "$sec/ipcontroller-client.json"',
    ])


def start_engines(settings, label, count=None, restart=False):
    """
    Start the engines missing on one host, each in a screen session of its own.

    *label* is the host's name in the inventory: each engine registers with a
    ``Session.session`` of ``<label>/<n>/<time>``, so that the controller can tell
    the engines of each host apart. *count* None means one engine per core. With
    *restart*, or when more engines run than wanted, every engine is stopped first.
    Without a shared home, it first writes the connection file it reads on stdin
    (mode 0600). Reports ``expected=`` and ``started=``.
    """
    engine = " ".join(q(arg) for arg in [f"--profile={settings.ipp_profile}"])
    timeout = int(settings.engine_timeout)
    return "\n".join([
        f"count={q(count) if count else '$(nproc)'}",
        'echo "expected=$count"',
        *([] if settings.shared_home else [
            '# no shared home: the connection file from the master comes on stdin',
            'mkdir -p "$sec" && cat > "$engine_file.new" && mv -f "$engine_file.new" "$engine_file"'
            " || exit 1"]),
        f'wait_file "$engine_file" {timeout} || {{ echo "no connection file $engine_file'
        f' after {timeout} s: is the controller up?" >&2; exit 1; }}',
        make_run_dir(),
        'running=$(sessions "$name-engine-[0-9]+")',
        f"restart={'yes' if restart else 'no'}",
        'for session in $running; do [ "${session##*-}" -le "$count" ] || restart=yes; done',
        'if [ "$restart" = yes ]; then halt engine "$name-engine-[0-9]+" >/dev/null; running=""; fi',
        "stamp=$(date +%s%N)",
        "started=0 n=1",
        'while [ "$n" -le "$count" ]; do',
        '  if ! printf "%s\\n" $running | grep -qx "$name-engine-$n"; then',
        f'    launch engine "$name-engine-$n" "${{bin}}ipengine" {engine} \\',
        f'      "--Session.session="{q(label)}"/$n/$stamp"',
        "    started=$((started + 1))",
        "  fi",
        "  n=$((n + 1))",
        "done",
        'echo "started=$started"',
    ])


def stop_engines():
    """Stop every engine of the cluster on one host; reports ``left_engine=``."""
    return 'lock\nhalt engine "$name-engine-[0-9]+"'


def host_status(count=None):
    """Report the host's cluster sessions (``sessions=``) and ``expected=`` engines."""
    return "\n".join([
        'echo "sessions=$(sessions "$name-(controller|jupyter|engine-[0-9]+)" | tr "\\n" " ")"',
        f"echo expected={q(count) if count else '$(nproc)'}",
    ])


def user_command(command):
    """A user's shell command, run as it is written by ``sh`` on the host."""
    return f"sh -c {q(command)}"


def tail_logs(roles, lines):
    """Print the last *lines* of the logs of *roles* (controller, jupyter, engine)."""
    patterns = " ".join(f'"$run/$name-{role}"*.log' for role in roles)
    return "\n".join([
        f"for log in {patterns}; do",
        '  [ -f "$log" ] || continue',
        '  printf "=== %s\\n" "$(basename "$log" .log)"',
        f'  tail -n {int(lines)} "$log"',
        "done",
    ])


def read_token():
    """Print Jupyter's token (``token=``), failing when the master never made one."""
    return "\n".join([
        'token_file="$run/jupyter.token"',
        '[ -s "$token_file" ] || { echo "no Jupyter token in $token_file:'
        ' is the master started?" >&2; exit 1; }',
        'echo "token=$(cat "$token_file")"',
    ])


def python(settings):
    """The cluster's Python: ``CLUSTER_ENV/bin/python``, or ``python3`` from the PATH."""
    return f"{settings.bin_prefix}python" if settings.cluster_env else "python3"


def probe(settings, expected=None, wait=0.0, shutdown=(), jupyter=True):
    """
    Ask the controller, through ipyparallel's own `Client` on the master, for engines.

    With *expected* (``{label: count}``) and *wait* seconds, it returns as soon as
    every host has exactly its count of engines registered (and Jupyter answers).
    With *shutdown* (labels), it first asks those hosts' engines to shut down.
    With *jupyter*, it also checks (and waits) that Jupyter answers. It
    reports ``probe=`` followed by JSON (see `tasks.probe`).
    """
    arguments = json.dumps({
        "profile": settings.ipp_profile,
        "port": settings.jupyter_port,
        "expected": expected or {},
        "wait": wait,
        "shutdown": list(shutdown),
        "jupyter": jupyter,
    })
    return f'{q(python(settings))} -c {q(PROBE_SOURCE)} {q(arguments)} "$run/jupyter.token"'
