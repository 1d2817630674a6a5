"""Unit tests for the command builders: given these settings, these exact commands."""

import json
import shlex
import subprocess

from tasks import commands
from tasks.inventory import Settings
from tasks.probe import PROBE_SOURCE

SETTINGS = Settings(cluster_env="/opt/ipp env", cluster_name="lab", ipp_profile="p1",
                    jupyter_port=9999, engine_timeout=45)


def body(command):
    """The script inside ``env -u IPP_CLUSTER_TAG sh -c '...'``."""
    words = shlex.split(command)
    assert words[:5] == ["env", "-u", "IPP_CLUSTER_TAG", "sh", "-c"] and len(words) == 6
    return words[5]


def test_script_is_one_sh_command_with_the_values_quoted_in_its_prelude():
    script = body(commands.script(SETTINGS, "echo part1", "echo part2"))
    assert "name=lab\nprofile=p1\nbin='/opt/ipp env/bin/'\n" in script
    assert script.index("echo part1") < script.index("echo part2")
    assert script.startswith("set -u\numask 077\n")


def test_prelude_runs_in_sh_and_sets_the_run_and_security_dirs(tmp_path):
    script = commands.script(SETTINGS, 'echo "run=$run"', 'echo "file=$engine_file"')
    out = subprocess.run(script, shell=True, capture_output=True, text=True,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    host = subprocess.run(["uname", "-n"], capture_output=True, text=True).stdout.strip()
    assert f"run={tmp_path}/.ipp-cluster/lab/{host}" in out
    assert f"file={tmp_path}/.ipython/profile_p1/security/ipcontroller-engine.json" in out


def test_a_hostile_value_stays_one_word():
    hostile = Settings(cluster_name="x", ipp_profile="$(touch /tmp/pwned)")
    script = body(commands.script(hostile, commands.host_status()))
    assert "profile='$(touch /tmp/pwned)'" in script


def test_controller_listens_where_engines_reach_it():
    assert commands.controller_args(SETTINGS, "node01") == [
        "--profile=p1", "--ip=*", "--location=node01",
        "--HeartMonitor.period=1000", "--HeartMonitor.max_heartmonitor_misses=5"]
    assert "--ip=127.0.0.1" in commands.controller_args(SETTINGS, "127.0.0.1")


def test_start_master_quotes_the_controller_and_starts_jupyter_on_loopback_only():
    part = commands.start_master(SETTINGS, "node 01")
    assert ('launch controller "$name-controller" env "${bin}ipcontroller" --profile=p1 '
            "'--ip=*' '--location=node 01'") in part
    assert "--ip=127.0.0.1 --port=9999 --ServerApp.port_retries=0" in part
    assert '"JUPYTER_TOKEN_FILE=$token_file"' in part
    assert "wait_file \"$engine_file\" 45" in part
    assert part.index("\nlock\n") < part.index("launch") < part.index("exec 9>&-") < part.index(
        "wait_file")


def test_encryption_turns_on_curve_in_the_controller_only():
    encrypted = Settings(encrypt=True)
    assert 'env IPP_ENABLE_CURVE=1 "${bin}ipcontroller"' in commands.start_master(encrypted, "m")
    assert "CURVE" not in commands.start_engines(encrypted, "n", 2)


def test_start_engines_uses_the_count_or_the_cores_and_labels_each_engine():
    fixed = commands.start_engines(SETTINGS, "alice@node02:2222", 4)
    assert "count=4\n" in fixed and "restart=no\n" in fixed
    assert '"--Session.session="alice@node02:2222"/$n/$stamp"' in fixed
    cores = commands.start_engines(SETTINGS, "node;03", None, restart=True)
    assert "count=$(nproc)\n" in cores and "restart=yes\n" in cores
    assert "\"--Session.session=\"'node;03'\"/$n/$stamp\"" in cores


def test_stops_halt_each_role():
    assert commands.stop_engines() == 'lock\nhalt engine "$name-engine-[0-9]+"'
    assert commands.stop_master().splitlines()[1:3] == [
        'halt controller "$name-controller"', 'halt jupyter "$name-jupyter"']


def test_probe_runs_the_cluster_python_with_json_arguments():
    words = shlex.split(commands.probe(SETTINGS, expected={"n1": 2}, wait=5, jupyter=False))
    assert words[0] == "/opt/ipp env/bin/python" and words[1:3] == ["-c", PROBE_SOURCE]
    assert json.loads(words[3]) == {"profile": "p1", "port": 9999, "expected": {"n1": 2},
                                    "wait": 5, "shutdown": [], "jupyter": False}
    assert words[4] == "$run/jupyter.token"
    assert shlex.split(commands.probe(Settings()))[0] == "python3"
