"""
``CONTROLLER_PORTS``: the one range of ports a site's firewall opens for the cluster. The
setting read and checked (file and line), the pool the controller gets (the range less
Jupyter's port), the count ``cluster.check`` asks of it, and the real controller
(``master/controller.py``, as the nanny runs it) listening on that range alone, a port
of it held by another program left out, and failing (never taking a port outside it)
when the range holds too few. And the reachability check that runs on an engine host
(``shared/reach.py``) against a real listening socket and a closed port.
"""

import json
import os
import pwd
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from tasks.commands import shipped as shipped_files
from tasks.inventory.error import InventoryError
from tasks.inventory.settings import Settings, parse_settings
from tasks.remote.shared.reach import engine_ports
from tasks.steps import preflight, reachability
from tests import shipped
from tests.waiting import wait_until


def test_the_range_is_read_and_jupyter_takes_its_first_port_unless_it_is_set_inside_it():
    settings = parse_settings("CONTROLLER_PORTS=20000-20019\n")
    assert (settings.controller_ports, settings.jupyter_port) == ((20000, 20019), 20000)
    assert settings.controller_pool == "20001-20019"
    settings = parse_settings("JUPYTER_PORT=20010\nCONTROLLER_PORTS=20000-20019\n")
    assert (settings.jupyter_port, settings.controller_pool) == (20010, "20000-20009,20011-20019")
    settings = parse_settings("CONTROLLER_PORTS=20000-20019\nJUPYTER_PORT=20019\n")
    assert settings.controller_pool == "20000-20018"
    assert parse_settings("CONTROLLER_PORTS=\n") == Settings()  # unset: ports as before
    assert Settings().controller_pool == "" and Settings().jupyter_port == 8888


RANGE = "must be LOW-HIGH, two ports from 1024 to 65535 with LOW no greater than HIGH (or empty)"


@pytest.mark.parametrize("text, line, reason", [
    ("CONTROLLER_PORTS=20000\n", 1, f"CONTROLLER_PORTS='20000' {RANGE}"),
    ("\nCONTROLLER_PORTS=20019-20000\n", 2, f"CONTROLLER_PORTS='20019-20000' {RANGE}"),
    ("CONTROLLER_PORTS=80-100\n", 1, f"CONTROLLER_PORTS='80-100' {RANGE}"),
    ("CONTROLLER_PORTS=60000-70000\n", 1, f"CONTROLLER_PORTS='60000-70000' {RANGE}"),
    ("CONTROLLER_PORTS=a-b\n", 1, f"CONTROLLER_PORTS='a-b' {RANGE}"),
    ("CONTROLLER_PORTS=20000-20019\nJUPYTER_PORT=8888\n", 2,
     "JUPYTER_PORT=8888 is outside CONTROLLER_PORTS=20000-20019: every port of the cluster lies in"
     " that range; choose a JUPYTER_PORT in it, or leave it out (Jupyter then takes 20000)"),
    ("JUPYTER_PORT=8888\n\nCONTROLLER_PORTS=20000-20019\n", 1,
     "JUPYTER_PORT=8888 is outside CONTROLLER_PORTS=20000-20019: every port of the cluster lies in"
     " that range; choose a JUPYTER_PORT in it, or leave it out (Jupyter then takes 20000)"),
])
def test_a_bad_range_names_file_line_and_problem(text, line, reason):
    with pytest.raises(InventoryError) as error:
        parse_settings(text, "inv/cluster.env")
    assert (error.value.path, error.value.line, error.value.reason) == ("inv/cluster.env", line, reason)


def test_a_range_too_small_for_the_controller_and_jupyter_is_named_with_both_counts():
    assert preflight.PORTS_NEEDED == 20  # measured below, on the real controller
    small = parse_settings("CONTROLLER_PORTS=20000-20018\n")
    assert preflight.ports_problem(small) == (
        "CONTROLLER_PORTS=20000-20018 holds 19 ports, but the cluster needs 20: 19 for the"
        " controller (registration, schedulers, heartbeats, host inbox and its own) and 1 for"
        " Jupyter: widen the range in cluster.env")
    assert preflight.ports_problem(parse_settings("CONTROLLER_PORTS=20000-20019\n")) == ""
    assert preflight.ports_problem(Settings()) == ""


def test_ports_of_the_range_that_others_hold_on_the_master_count_against_it():
    settings = parse_settings("CONTROLLER_PORTS=20000-20021\n")  # 22 ports: 2 to spare
    held = {"ports_taken": "20000:ann 20003:bob 20004:root"}  # 20000: Jupyter's (judged apart)
    assert preflight.ports_problem(settings, held) == ""
    held["ports_taken"] += " 20007:bob"
    assert preflight.ports_problem(settings, held) == (
        "CONTROLLER_PORTS=20000-20021 holds 22 ports, but 3 of them are taken on the master"
        " (20003 by bob, 20004 by root, 20007 by bob) and the cluster needs 20: 19 for the"
        " controller (registration, schedulers, heartbeats, host inbox and its own) and 1 for"
        " Jupyter: widen the range in cluster.env, or free those ports")
    held["ports_taken"] = "20003:bob; 20004 x:y 99999:z"  # what is not PORT:USER is left out
    assert preflight.ports_problem(settings, held) == ""


def test_the_master_says_who_listens_in_the_range_while_its_controller_does_not_run(tmp_path):
    from tasks import commands
    from tests.test_commands import REMOTE  # noqa: F401 (the tree the script is made from)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    script = commands.script(Settings(cluster_name=f"t{os.getpid()}"),
                             commands.facts(None, None, None, None, f"{port - 1}-{port + 1}"))
    try:
        out = subprocess.run(commands.REMOTE_SHELL, shell=True, input=script, capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, HOME=str(tmp_path)))
    finally:
        server.close()
    said = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert said["ports_taken"] == f"{port}:{pwd.getpwuid(os.getuid()).pw_name}", out.stderr


def listening(pid):
    """The TCP ports that the process *pid* and its children listen on."""
    group = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    pids = {p.pid for p in group}
    return {c.laddr.port for c in psutil.net_connections("tcp")
            if c.pid in pids and c.status == psutil.CONN_LISTEN}


def free_range(count):
    """*count* consecutive ports that nothing listens on here now."""
    taken = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    low = 21000 + os.getpid() % 2000 * 10
    while any(port in taken for port in range(low, low + count)):
        low += count
    return low, low + count - 1


def start_controller(tmp_path, pool, *more):
    """controller.py on 127.0.0.1 with the port pool *pool*, as start_master.sh starts it."""
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    log = tmp_path / "controller.log"
    package = shipped.unpack("start_master", tmp_path / "code") if not (tmp_path / "code").exists() \
        else tmp_path / "code" / shipped_files.PACKAGE
    with log.open("ab") as out:
        process = subprocess.Popen(shipped.argv(package, "master.controller", tmp_path, "--profile=ports",
                                                "--ip=127.0.0.1", f"--IPController.ports={pool}", *more),
                                   stdout=out, stderr=out, env=env, start_new_session=True)
    return process, log, tmp_path / "ipython" / "profile_ports" / "security" / "ipcontroller-engine.json"


def test_the_controller_listens_inside_its_pool_alone_and_skips_a_port_held_by_another(tmp_path):
    low, high = free_range(21)
    held = socket.create_server(("127.0.0.1", low + 3))  # another program's, in the range
    process, log, engine_file = start_controller(tmp_path, f"{low}-{high}")
    try:
        info = wait_until(lambda: engine_file.exists() and json.loads(engine_file.read_text()), 60,
                          "the controller's engine file")
        wait_until(lambda: b"task::using" in log.read_bytes(), 60, "the controller's start")
        ports = wait_until(lambda: len(listening(process.pid)) >= 19 and listening(process.pid), 30,
                           "the controller's ports")
        assert len(ports) == preflight.PORTS_NEEDED - 1  # all but Jupyter's
        assert ports <= set(range(low, high + 1)) - {low + 3}, (sorted(ports), low, high)
        address, needed = engine_ports(info)
        assert address == "127.0.0.1" and len(needed) == 10 and set(needed) <= ports
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        held.close()


def test_a_controller_restored_after_a_crash_keeps_its_ports_inside_a_pool_just_large_enough(tmp_path):
    """20 ports, as CONTROLLER_PORTS needs at least: 19 in the pool. ``--restore`` (the nanny's,
    after a crash) reads the engines' and clients' ports back and draws its inner ones again:
    never one that its files name, nor one outside the pool."""
    low, high = free_range(19)
    pool = set(range(low, high + 1))
    process, log, engine_file = start_controller(tmp_path, f"{low}-{high}")
    try:
        first = wait_until(lambda: engine_file.exists() and json.loads(engine_file.read_text()), 60,
                           "the controller's engine file")
        wait_until(lambda: len(listening(process.pid)) >= 19, 60, "the controller's 19 ports")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # a crash: its files stay
        process.wait()
    process, log, _ = start_controller(tmp_path, f"{low}-{high}", "--restore")
    try:
        ports = wait_until(lambda: len(listening(process.pid)) >= 19 and listening(process.pid), 60,
                           "the restored controller's 19 ports")
        assert ports == pool, (sorted(ports), low, high, log.read_text()[-3000:])
        assert json.loads(engine_file.read_text()) == first  # the engines' ports, as they were
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_pool_too_small_fails_the_controller_rather_than_take_a_port_outside_it(tmp_path):
    low, high = free_range(17)  # 18 are ipyparallel's own (the host inbox does without)
    process, log, engine_file = start_controller(tmp_path, f"{low}-{high}")
    try:
        assert process.wait(timeout=60) != 0
        assert "CONTROLLER_PORTS: no free port left" in log.read_text(), log.read_text()[-3000:]
        assert not engine_file.exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def reach(*args):
    """Run ``shared/reach.py`` as the ``reach`` step does (``python - ARGS``, the file on stdin)."""
    out = subprocess.run([sys.executable, "-", *map(str, args)], capture_output=True, text=True,
                         input=shipped_files.program("shared/reach.py"), timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def test_an_engine_host_names_each_port_of_the_controller_it_cannot_reach():
    server = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    open_port, closed_port = server.getsockname()[1], closed.getsockname()[1]
    closed.close()
    try:
        found = reach("connect", "127.0.0.1", 3, open_port, closed_port)
    finally:
        server.close()
    assert found == {"reached": "1", "unreachable": f"127.0.0.1:{closed_port}/refused"}
    # 192.0.2.1 (documentation): an address that answers nothing, or refuses at once
    found = reach("connect", "192.0.2.77", 1, 20000)
    assert found["reached"] == "0" and found["unreachable"].startswith("192.0.2.77:20000/")


def test_the_unreachable_ports_are_said_per_host_with_what_to_open():
    assert reachability.problem("10.0.0.1:20003/timeout 10.0.0.1:20005/refused", 3) == (
        "cannot reach the controller at 10.0.0.1:20003 (no answer in 3 s), 10.0.0.1:20005"
        " (refused): the engines of this host would never register; let this host reach"
        " those ports of the master in the firewall (CONTROLLER_PORTS in cluster.env puts"
        " them all in one range)")
    assert reachability.problem("", 3) == ""
