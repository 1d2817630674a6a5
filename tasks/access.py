"""
Tasks that reach the running cluster from this machine: ``tunnel`` forwards a local port
to Jupyter on the master, ``connect`` brings the controller's client file here (with
forwards of its ports when SSH alone cannot take the client there).

They are mounted in the ``cluster`` namespace.
"""

import socket
import sys
import time

from fabric import task
from invoke.exceptions import Exit

from . import commands
from .context import load, reads_inventory, session, whole_number
from .show import report
from .ssh import forward
from .steps import client, lifecycle, operations


def free_port(preferred, taken=()):
    """*preferred* if nothing listens there on 127.0.0.1 (and not *taken*), else the next free port."""
    for port in range(preferred, min(preferred + 100, 65536)):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise Exit(f"error: no free local port from {preferred} to {preferred + 99}", code=1)


@task(help={"port": "the local port, 1 to 65535 (default: JUPYTER_PORT, or the next free one)"})
@reads_inventory
def tunnel(c, port=""):
    """Forward a local port to Jupyter on the master, print the URL with its token, hold until Ctrl-C."""
    port = whole_number("port", port, 1, 65535) if port != "" else 0
    inventory = load()
    remote_port = inventory.settings.jupyter_port
    with session(c, inventory) as cluster:
        fleet_, inventory, master = cluster.fleet, cluster.inventory, cluster.master
        result = lifecycle.read_token(fleet_, inventory)
        report.fail_if(report.failures({master.name: result}))
        token = result.facts["token"]
        if master.is_local:
            print(f"the master is this machine: {report.jupyter_url(remote_port, token)}")
            print(f"Dashboard: {report.dashboard_url(remote_port, token)}")
            return
        local_port = port or free_port(remote_port)
        # Each connection through a relay that proves its own to Jupyter's port this user's
        # (the browser sends the token there); no SETUP: it costs seconds, the relay none.
        program = commands.script(inventory.settings, commands.relay(remote_port))
        def more():  # another SSH connection, for the relays beyond forward.SESSIONS on each
            connection = fleet_.connection(master, extra=True)
            connection.open()
            connection.transport.set_keepalive(KEEPALIVE)
            return connection.transport
        with _forwards(fleet_.connection(master), inventory.settings, "127.0.0.1",
                       {local_port: remote_port}, relay=lambda remote: program,
                       name=master.name, more=more) as forwards:
            print(f"Jupyter: {report.jupyter_url(local_port, token)}", flush=True)
            print(f"Dashboard: {report.dashboard_url(local_port, token)}", flush=True)
            _hold(forwards, "forwarding; press Ctrl-C to stop")


#: Seconds between SSH keepalives while ports are forwarded: a dead connection must end
#: the hold, not leave forwards that go nowhere.
KEEPALIVE = 15


def _forwards(connection, settings, remote_host, ports, **relay):
    """`forward.Forwards` of *ports* through *connection*, each checked end to end, or exit 1
    (*relay*: ``relay=``, ``name=`` and ``more=`` of `forward.Forwards`)."""
    connection.open()  # open since the step before; this only makes sure
    connection.transport.set_keepalive(KEEPALIVE)
    forwards = None
    try:
        forwards = forward.Forwards(connection.transport, remote_host, ports,
                                    settings.connect_timeout, warn=_warn, **relay)
        forwards.check(ports.values())
    except forward.ForwardError as error:
        if forwards is not None:
            forwards.close()
        raise Exit(f"error: {error}", code=1) from None
    return forwards


def _warn(line):
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _hold(forwards, message):
    """Print *message*, then hold *forwards* until Ctrl-C (exit 0) or until they fail (exit 1)."""
    print(message, flush=True)
    try:
        while forwards.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    raise Exit(f"error: {forwards.problem}; the forwards are gone: run the task again", code=1)


@task
@reads_inventory
def connect(c):
    """Bring the controller's client file here (0600) and print how ipp.Client uses it through SSH."""
    inventory = load()
    with session(c, inventory) as cluster:
        fleet_, inventory, master = cluster.fleet, cluster.inventory, cluster.master
        result = operations.read_client_file(fleet_, inventory)
        report.fail_if(report.failures({master.name: result}))
        data = client.decode(result.facts["client_file"])
        # ipyparallel's own tunnel takes one SSH hop: a job's node behind a login node takes
        # this project's forwards, as encryption does.
        if master.is_local or not (inventory.settings.encrypt or master.via):
            path = client.save(inventory.settings, data)
            through = () if master.is_local else client.server_of(fleet_.connection(master))
            _print_client(path, client.lines(path, *through))
        else:
            _hold_forwards(fleet_.connection(master), inventory.settings, data)


def _print_client(path, lines):
    print(f"# the cluster's client connection file is {path}; in Python:", flush=True)
    print("\n".join(lines), flush=True)


def _hold_forwards(connection, settings, data):
    """ENCRYPT=yes: forward a local port to each of the controller's, until Ctrl-C. The client
    file that points at them is removed when they end."""
    remote, local = client.remote_address(data), {}
    for name, port in client.ports(data).items():
        local[name] = free_port(port, taken=set(local.values()))
    remote_ports = {local[name]: port for name, port in client.ports(data).items()}
    with _forwards(connection, settings, remote, remote_ports) as forwards:
        path = client.save(settings, client.through_forwards(data, local))
        try:
            _print_client(path, client.lines(path))
            _hold(forwards, "# forwarding the controller's ports; press Ctrl-C to stop")
        finally:
            path.unlink(missing_ok=True)
