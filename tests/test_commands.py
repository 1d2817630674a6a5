"""
Unit tests of what runs on the hosts: the scripts of `tasks.commands`, run here by a
local ``/bin/sh -s`` as a host runs them, with stand-ins for ipcontroller, ipengine
and jupyter that record how they were called. No SSH, no root.
"""

import dataclasses
import io
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tasks import commands
from tasks.commands import shipped, slurm
from tasks.commands.answers import parse_supervisor
from tasks.inventory.folder import Allocation, Host, Settings
from tasks.steps import environment
from tests.waiting import wait_until

REMOTE = Path(__file__).resolve().parent.parent / "tasks" / "remote"
SHELLS = ("sh", "dash", "bash", "zsh", "ksh", "fish", "tcsh", "csh")
needs_screen = pytest.mark.skipif(not shutil.which("screen"), reason="needs screen")

# A stand-in for ipcontroller, ipengine and jupyter: it writes its arguments and its
# tag to a file named after itself and, as ipcontroller, the engine connection file; as
# ipengine, the session its --config= file gives, read as ipengine reads it, and its mode.
STAND_IN = """#!/bin/sh
me=$(basename "$0") session= mode=
READ_SESSION='import sys; from traitlets.config.loader import JSONFileConfigLoader as L
print(L(sys.argv[1]).load_config().Session.session)'
for arg in "$@"; do
  case $arg in --config=*)
    mode=$(stat -c %a "${arg#--config=}")
    session=$("$(dirname "$0")/python" -c "$READ_SESSION" "${arg#--config=}");;
  esac
done
{ printf '%s\\n' "$@"; echo "session=$session"; echo "config_mode=$mode"; \
echo "tag=$IPP_CLUSTER_TAG"; echo "curve=${IPP_ENABLE_CURVE:-}"; \
echo "token_file=${JUPYTER_TOKEN_FILE:-}"; echo "cuda=${CUDA_VISIBLE_DEVICES-unset}"; \
echo "threads=${OMP_NUM_THREADS-}/${MKL_NUM_THREADS-}/${OPENBLAS_NUM_THREADS-}/${NUMEXPR_NUM_THREADS-}\
/${VECLIB_MAXIMUM_THREADS-}"; echo "path=$PATH"; } > "$HOME/$me.$$.args"
if [ "$me" = ipcontroller ]; then
  sec="$HOME/.ipython/profile_p1/security"; mkdir -p "$sec"; echo '{}' > "$sec/ipcontroller-engine.json"
fi
exec sleep 600
"""


@pytest.fixture
def host(tmp_path):
    """Run a script as a host would: ``/bin/sh -s`` with it on stdin, in a home of its own."""
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("ipcontroller", "ipengine", "jupyter"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    # This venv's python runs the nanny and the probe, with psutil and ipyparallel; the
    # controller's program (ipp_remote master.controller RUN_DIR ARGS) is the stand-in ipcontroller.
    (bin_dir / "python").write_text(f'#!/bin/sh\ncase $2 in master.controller) shift 3; exec '
                                    f'"$(dirname "$0")/ipcontroller" "$@";; esac\nexec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    settings = Settings(cluster_env=str(tmp_path / "env"), cluster_name=f"t{os.getpid()}",
                        ipp_profile="p1", jupyter_port=9999, engine_timeout=5)
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "SCREENDIR": str(tmp_path / "screens"),
           "SSH_CONNECTION": "10.0.0.9 50022 10.0.0.7 22"}  # as sshd sets it
    (tmp_path / "screens").mkdir(mode=0o700)

    def run(*steps, settings=settings, setup="", **more_env):
        return subprocess.run(commands.REMOTE_SHELL, shell=True,
                              input=commands.script(settings, *steps, setup=setup),
                              capture_output=True, text=True, env=dict(env, **more_env), timeout=60)
    run.home, run.settings = tmp_path, settings
    yield run
    run(commands.stop_engines(), commands.stop_master())


def calls(home, program, count):
    """The argument lists the stand-in *program* was called with (all of them), once there
    are *count* and each is written whole: its last line, ``path=``, is there."""
    def written():
        texts = [path.read_text() for path in sorted(home.glob(f"{program}.*.args"))]
        whole = all(text.endswith("\n") and text.splitlines()[-1].startswith("path=") for text in texts)
        return len(texts) >= count and whole and ([text.splitlines() for text in texts],)
    return wait_until(written, 10, f"{count} calls of the stand-in {program}, each written whole")[0]


def node(name, **variables):
    """An engine host of the inventory, with the variables of its hosts line."""
    return Host(name, name, **variables)


def facts(result):
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_values_stay_one_word_and_are_never_run(host, tmp_path):
    marker = tmp_path / "pwned"
    result = host(commands.Step("tail_logs", (1, f"x; touch {marker}", f"$(touch {marker})")),
                  commands.user_command(f'printf "%s|" "$0" "{marker}"'))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert result.stdout == f"sh|{marker}|"


def test_a_step_reads_only_its_own_data_and_a_failing_step_ends_the_script(host):
    text = "line one\n{\"key\": \"secret\"}\n"
    result = host(commands.user_command("cat"), commands.write_engine_file(text),
                  commands.read_engine_file(), commands.Step("start_master", ("nowhere", 1, "", "no", 1000, 60)),
                  commands.user_command("echo never"))
    assert result.returncode == 1
    assert "cannot tell the master's IPv4 address" in result.stderr and "never" not in result.stdout
    engine_file = host.home / ".ipython/profile_p1/security/ipcontroller-engine.json"
    assert engine_file.read_text() == text
    assert stat.S_IMODE(engine_file.stat().st_mode) == 0o600
    assert facts(host(commands.read_engine_file()))["engine_file"] == commands.as_base64(text).replace(
        "\n", "")


def test_examples_are_unpacked_and_never_overwrite_a_file(host):
    def packed(content):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("a.ipynb")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        return buffer.getvalue()
    assert host(commands.put_examples(host.settings, packed(b"first"))).returncode == 0
    assert host(commands.put_examples(host.settings, packed(b"second"))).returncode == 0
    assert (host.home / "ipp-examples" / "a.ipynb").read_bytes() == b"first"


@pytest.mark.skipif(os.geteuid() != 0, reason="run as root: it gives a folder to another user")
def test_an_examples_folder_made_first_by_another_user_or_open_to_others_is_refused(host):
    """A shared NOTEBOOK_DIR where another user made ``ipp-examples`` first (their notebooks
    would be offered as the examples), or one that others may write to: refused, in a line
    that says what to do, and nothing is put there."""
    folder = host.home / "ipp-examples"
    folder.mkdir()
    os.chown(folder, 65534, 65534)  # nobody's
    result = host(commands.put_examples(host.settings, _empty_tar()))
    other = pwd.getpwuid(65534).pw_name
    assert result.returncode == 1
    assert result.stderr == (f"{folder} belongs to {other}, not to you: its notebooks are not the examples;"
                             " remove it, or choose another NOTEBOOK_DIR\n")
    os.chown(folder, 0, 0)
    folder.chmod(0o777)
    result = host(commands.put_examples(host.settings, _empty_tar()))
    assert (result.returncode, result.stderr) == (
        1, f"{folder} is writable by other users (mode 777): chmod go-w it, or remove it\n")
    folder.chmod(0o775)  # its group (root's primary group, as "users" is shared on many sites)
    result = host(commands.put_examples(host.settings, _empty_tar()))
    assert (result.returncode, result.stderr) == (
        1, f"{folder} is writable by other users (mode 775): chmod go-w it, or remove it\n")
    folder.chmod(0o755)
    assert host(commands.put_examples(host.settings, _empty_tar())).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="run as root: it gives a folder to another user")
def test_an_examples_folder_that_another_user_makes_while_it_is_put_is_refused(host, tmp_path):
    """Another user makes ``ipp-examples`` in a shared NOTEBOOK_DIR just before this user's
    is made (a mkdir that stands in for theirs, run at that moment): it is refused, and
    nothing is put there."""
    stand_in = tmp_path / "racing-bin"
    stand_in.mkdir()
    real = shutil.which("mkdir")
    (stand_in / "mkdir").write_text(f'#!/bin/sh\ncase $* in *ipp-examples*) {real} {host.home}/ipp-examples &&'
                                    f' chown 65534:65534 {host.home}/ipp-examples;; esac\nexec {real} "$@"\n')
    (stand_in / "mkdir").chmod(0o755)
    result = host(commands.put_examples(host.settings, _tar_of("a.ipynb")), PATH=f"{stand_in}:{os.environ['PATH']}")
    assert (result.returncode, list((host.home / "ipp-examples").iterdir())) == (1, []), result.stderr
    assert result.stderr.startswith(f"{host.home}/ipp-examples belongs to {pwd.getpwuid(65534).pw_name}, not")


@needs_screen
def test_start_master_starts_controller_and_jupyter_once_with_their_settings(host):
    settings = dataclasses.replace(host.settings, encrypt=True)
    first = facts(host(commands.start_master(settings, "ssh"), settings=settings))
    assert (first["controller"], first["jupyter"]) == ("started", "started")
    assert first["controller_address"] == "10.0.0.7"  # where the SSH connection came in
    again = facts(host(commands.start_master(settings, "10.0.0.8"), settings=settings))
    assert (again["controller"], again["jupyter"], again["token"]) == ("running", "running",
                                                                      first["token"])
    assert again["controller_address"] == "10.0.0.7"  # what the running controller listens on
    [controller] = calls(host.home, "ipcontroller", 1)
    assert controller[:6] == ["--profile=p1", "--ip=10.0.0.7", "--location=10.0.0.7",
                              "--HeartMonitor.period=1000", "--HeartMonitor.max_heartmonitor_misses=5",
                              "--IPController.registration_timeout=60"]
    assert f"tag={settings.cluster_name}/controller" in controller and "curve=1" in controller
    [jupyter] = calls(host.home, "jupyter", 1)
    assert jupyter[:6] == ["server", "--no-browser", "--ip=127.0.0.1", "--port=9999",
                           "--ServerApp.port_retries=0", "--ServerApp.default_url=/tree"]
    assert len(first["token"]) == 48 and not any(first["token"] in arg for arg in jupyter)
    token_file = Path(next(a for a in jupyter if a.startswith("token_file="))[len("token_file="):])
    assert token_file.read_text() == first["token"]
    stopped = facts(host(commands.stop_master()))
    assert (stopped["left_controller"], stopped["left_jupyter"]) == ("0", "0")


def test_the_controller_draws_from_controller_ports_less_jupyters_port_and_as_before_without(host):
    settings = dataclasses.replace(host.settings, controller_ports=(20000, 20019), jupyter_port=20005)
    facts(host(commands.start_master(settings, "10.0.0.7"), settings=settings))
    [controller] = calls(host.home, "ipcontroller", 1)
    [jupyter] = calls(host.home, "jupyter", 1)
    assert "--IPController.ports=20000-20004,20006-20019" in controller and "--port=20005" in jupyter
    facts(host(commands.stop_master()))
    for path in host.home.glob("*.args"):
        path.unlink()
    facts(host(commands.start_master(host.settings, "10.0.0.7")))
    [controller] = calls(host.home, "ipcontroller", 1)
    assert not [arg for arg in controller if "ports" in arg]


@needs_screen
def test_engines_are_labelled_counted_restarted_and_stopped_to_the_last_process(host):
    host(commands.write_engine_file("{}"))
    started = facts(host(commands.start_engines(host.settings, node("alice@node02:2222", engines=2))))
    assert (started["expected"], started["started"]) == ("2", "2")
    assert facts(host(commands.start_engines(host.settings, node("alice@node02:2222", engines=2))))["started"] == "0"
    engines = calls(host.home, "ipengine", 2)
    sessions = sorted(session_of(args).split("/")[:2] for args in engines)
    assert sessions == [["alice@node02:2222", "1"], ["alice@node02:2222", "2"]]
    for args in engines:  # given in a file only the user reads, with a random part; on no command line
        assert "config_mode=600" in args and re.fullmatch(r"[^/]+/[12]/[0-9]+/[0-9a-f]{16}", session_of(args))
        argv = args[:args.index(f"session={session_of(args)}")]
        assert argv and not any(session_of(args) in arg or "Session.session" in arg for arg in argv)
    # they outlast a controller restart (see ENGINE_HEARTBEAT_MISSES in lib.sh)
    assert all("--IPEngine.max_heartbeat_misses=50" in args for args in engines)
    status = facts(host(commands.host_status(node("n", engines=2))))
    assert status["sessions"].split() == [f"{host.settings.cluster_name}-engines"]  # one supervisor
    state = parse_supervisor(status)
    assert state["mode"] == "process"  # a stand-in is no ipengine of this Python: not forked
    assert {n: e["state"] for n, e in state["engines"].items()} == {"1": "running", "2": "running"}
    assert facts(host(commands.start_engines(host.settings, node("x", engines=1))))["started"] == "1"  # fewer: all restarted
    assert len(calls(host.home, "ipengine", 3)) == 3
    run_dir = host.home / ".ipp-cluster" / host.settings.cluster_name / os.uname().nodename
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert (run_dir / f"{host.settings.cluster_name}-engine-1.log").exists()
    assert facts(host(commands.stop_engines()))["left_engine"] == "0"
    tag = f"IPP_CLUSTER_TAG={host.settings.cluster_name}/".encode()
    assert not [p for p in Path("/proc").glob("[0-9]*/environ") if _carries(p, tag)]


def _carries(environ, tag):
    try:
        return any(entry.startswith(tag) for entry in environ.read_bytes().split(b"\0"))
    except OSError:
        return False


def test_install_creates_the_env_and_installs_from_a_wheelhouse_with_no_index(host, tmp_path):
    site = tmp_path / "site-packages"  # the fake environment's (its python answers sysconfig)
    env_python = tmp_path / "env-python"
    env_python.write_text(f'#!/bin/sh\ncase $2 in *sysconfig*) echo {site}; exit;; esac\n'
                          f'echo "$@" >> {tmp_path}/pip.log\n')
    env_python.chmod(0o755)
    fake_python = tmp_path / "python3"
    fake_python.write_text(f'#!/bin/sh\nmkdir -p "$3/bin" {site}; cp {env_python} "$3/bin/python"\n')
    fake_python.chmod(0o755)
    (tmp_path / "wheels.tar.gz").write_bytes(_empty_tar())
    settings = Settings(cluster_env=str(tmp_path / "cluster env"))
    result = host(environment.install(settings, "a==1\nb==2", str(fake_python), "wheels.tar.gz"),
                  settings=settings)
    assert facts(result)["created"] == "yes"
    pip = (tmp_path / "pip.log").read_text().splitlines()
    assert "--no-index --find-links" in pip[0] and pip[0].endswith("requirements.txt")
    assert not (tmp_path / "wheels.tar.gz").exists()
    assert sorted(p.name for p in site.iterdir()) == ["ipp_cluster.pth", "ipp_cluster.py"]
    for name in ("ipp_cluster.pth", "ipp_cluster.py"):  # the project's, whole
        assert (site / name).read_text() == (REMOTE / "jupyter" / name).read_text()
    again = host(environment.install(settings, "a==1", str(fake_python)), settings=settings)
    assert facts(again)["created"] == "no" and "--no-index" not in (tmp_path / "pip.log").read_text(
        ).splitlines()[2]


def _tar_of(name):
    """A tar.gz of one empty file *name*."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    return buffer.getvalue()


def _empty_tar():
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w:gz").close()
    return buffer.getvalue()


def test_data_holding_the_end_line_is_refused():
    with pytest.raises(ValueError, match="IPP-END-OF-DATA"):
        commands.script(Settings(), commands.Step("put_examples", (), "x\nIPP-END-OF-DATA\ny\n"))


@pytest.mark.parametrize("shell", SHELLS)
def test_every_login_shell_reads_the_command_line_alike(shell, tmp_path):
    """What reaches the login shell is one short line; its meaning is the same everywhere."""
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed")
    assert "\n" not in commands.REMOTE_SHELL and len(commands.REMOTE_SHELL) < 40
    script = commands.script(Settings(cluster_name="x"), commands.user_command(
        "printf '%s|' \"$0\" 'it'\"'\"'s' '!x' '{a,b}' '$HOME' '~'"))
    out = subprocess.run([shutil.which(shell), "-c", commands.REMOTE_SHELL], input=script, text=True,
                         capture_output=True, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                                   "IPP_CLUSTER_TAG": "x/jupyter"}, timeout=30)
    assert (out.returncode, out.stdout) == (0, "sh|it's|!x|{a,b}|$HOME|~|"), out.stderr


def test_shellcheck_passes_on_every_shell_file_and_on_a_whole_script():
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing: the README's test command installs it")
        pytest.skip("needs shellcheck (apt-get install shellcheck)")
    files = sorted(REMOTE.glob("steps/*/*.sh")) + [REMOTE / "steps" / "lib.sh"]
    assert len(files) >= 10
    result = subprocess.run([shellcheck, "-s", "sh", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    settings = Settings(cluster_env="/opt/env")
    steps = [commands.put_examples(settings, b"x"), commands.start_master(settings, "ssh"),
             commands.read_engine_file(), commands.write_engine_file("{}"),
             commands.start_engines(settings, node("n", engines=2)), commands.stop_engines(), commands.stop_master(),
             commands.host_status(node("n", engines=2)), commands.read_token(), commands.user_command("true"),
             commands.read_client_file(), commands.peer_address(), commands.renew_engines([1]),
             commands.tail_logs(["engine"], 5), commands.facts(8888), commands.probe(settings),
             commands.write_plan("n", {"expected": "2", "threads": "1", "devices": "GPU-1 GPU-2"}),
             commands.controller_ports(), commands.reach("10.0.0.7", 3, [20001, 20002]),
             environment.install(settings, "a==1")]
    allocation = Allocation("a", 2)
    steps += [slurm.submit(settings, 0, allocation, "#!/bin/sh\n"), *(
        slurm.on_job(function, settings, 1, allocation)
        for function in ("slurm_jobs", "slurm_cancel", "slurm_cancelled", "slurm_restart")),
        slurm.cancel_all(), slurm.cancelled_all(), slurm.start_keeper(settings, [allocation]),
        slurm.stop_keeper(), slurm.keeper_said(), commands.relay(8888)]  # it exits: the last
    assert {shipped.step_file(step.function) for step in steps} | {shipped.step_file("slurm_job")} == {
        str(path.relative_to(REMOTE)) for path in files} - {"steps/lib.sh"}  # the job's: test_slurm.py
    whole = commands.script(settings, *steps[:-1], setup="module load python/3.11")
    result = subprocess.run([shellcheck, "-s", "sh", "-"], input=whole, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    # The relay exits (nothing after it is read as the script): a script of its own, where the
    # functions of lib.sh that it does not call look unreachable to shellcheck (SC2317).
    relay = commands.script(settings, steps[-1])
    result = subprocess.run([shellcheck, "-s", "sh", "-e", "SC2317", "-"], input=relay, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


def test_the_master_without_an_ipv4_address_for_the_engines_refuses_to_start(host):
    result = host(commands.start_master(host.settings, "node01"))
    assert result.returncode == 1 and calls(host.home, "ipcontroller", 0) == []
    assert result.stderr == ("cannot tell the master's IPv4 address for the engines (SSH came in on"
                             " 'node01'): set CONTROLLER_ADDRESS in cluster.env\n")


@needs_screen
def test_a_screen_that_refuses_to_start_a_session_fails_the_step_with_its_words(host, tmp_path):
    """A folder of sessions that screen refuses (open to others here; not the user's, as
    /run/screen/S-USER left by a removed user of the same name): screen starts nothing, and
    the step says so at once instead of waiting for the controller."""
    refused = tmp_path / "refused"
    refused.mkdir()
    refused.chmod(0o755)
    result = host(commands.start_master(host.settings, "10.0.0.7"), SCREENDIR=str(refused))
    assert result.returncode == 1 and calls(host.home, "ipcontroller", 0) == []
    assert result.stderr == (f"screen could not start {host.settings.cluster_name}-controller: "
                             f"Directory {refused} must have mode 700.\n")


@pytest.mark.parametrize("came_in_on", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_a_master_reached_on_its_loopback_refuses_it_for_remote_engines(host, came_in_on):
    """fab reached the master through a port forward: SSH came in on its loopback, which
    the engine hosts would take for their own."""
    result = host(commands.start_master(host.settings, "ssh"),
                  SSH_CONNECTION=f"127.0.0.1 50022 {came_in_on} 22")
    assert result.returncode == 1 and calls(host.home, "ipcontroller", 0) == []
    assert result.stderr == (
        f"SSH came in on the master's loopback ({came_in_on.removeprefix('::ffff:')}: through a "
        "port forward?), which the engine hosts cannot reach: set CONTROLLER_ADDRESS in "
        "cluster.env to the master's address on the engines' network\n")


def test_a_host_says_where_its_ssh_connection_comes_from(host):
    assert facts(host(commands.peer_address()))["peer_address"] == "10.0.0.9"


def test_the_heartbeat_slows_and_registration_waits_longer_as_the_cluster_grows():
    assert commands.heartbeat(None) == commands.heartbeat(100) == (1000, 60)
    assert commands.heartbeat(200) == (2000, 100)
    assert commands.heartbeat(448) == (4480, 224)
    assert commands.heartbeat(5000) == (5000, 2500)


@needs_screen
def test_controller_and_jupyter_start_with_open_files_raised_to_the_hard_limit(host):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # what the master's login gives
    try:
        facts(host(commands.start_master(host.settings, "10.0.0.8", engines=200)))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    [controller] = calls(host.home, "ipcontroller", 1)
    assert "--HeartMonitor.period=2000" in controller
    for program in ("ipcontroller", "jupyter"):
        calls(host.home, program, 1)  # it started (Jupyter's may start after the controller's)
        pid = next(host.home.glob(f"{program}.*.args")).name.split(".")[1]
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)], program


def session_of(args):
    """The session a stand-in engine registers as (``LABEL/N/TIME/RANDOM``), from its
    ``--config=`` file."""
    return next(arg for arg in args if arg.startswith("session="))[len("session="):]


def test_the_check_names_a_screen_and_a_python3_too_old_each_in_one_line(host, tmp_path):
    """A host whose screen is 4.5 (no -Logfile) and whose python3 is 3.10 (Ubuntu 22.04's,
    where pip fails on the pinned packages), CLUSTER_ENV not made yet: facts.sh reports
    both versions and the check says each in one line."""
    from tasks.steps.preflight import judge
    fake = tmp_path / "old"
    fake.mkdir()
    (fake / "screen").write_text('#!/bin/sh\necho "Screen version 4.05.00 (GNU) 10-Dec-16"; exit 1\n')
    (fake / "python3").write_text('#!/bin/sh\necho 3.10.12\n')
    for program in fake.iterdir():
        program.chmod(0o755)
    settings = dataclasses.replace(host.settings, cluster_env=str(tmp_path / "not-yet"))
    result = host(commands.facts(), settings=settings, PATH=f"{fake}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    reported = facts(result)
    assert (reported["screen_version"], reported["python3"]) == (
        "Screen version 4.05.00 (GNU) 10-Dec-16", "3.10.12")
    assert judge(reported, {}, settings)[1:] == [
        "python3 is Python 3.10.12 here, but the cluster's packages need Python 3.11 or newer: install"
        " one and name it to fab cluster.install --python=python3.11",
        "screen 4.05.00 here, but the cluster needs screen 4.6 or newer (its -Logfile): upgrade it"]


def test_a_shipped_file_has_a_past_time_that_changes_with_its_content_alone():
    """Python takes a module's cached bytecode for a source of the same time and size: an
    edit that keeps the size must ship with another time (and the same files, the same bytes)."""
    def when(text):
        with tarfile.open(fileobj=io.BytesIO(shipped._tar({"ipp_remote/a.py": text}))) as tar:
            return tar.getmembers()[0].mtime
    assert when("RESCAN = 5\n") != when("RESCAN = 7\n")
    assert when("RESCAN = 5\n") == when("RESCAN = 5\n") and 0 < when("RESCAN = 5\n") < time.time()
