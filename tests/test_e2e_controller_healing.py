"""
End to end: a controller and a Jupyter that come back by themselves. Host 1 is the
master; hosts 2 and 3 run two engines each.
"""

import json
import re
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import engines_by_id, fab_for, leftovers, nothing_left, status_saying
from tests.conftest import three_host_inventory, with_client
from tests.kernels import jupyter_kernel
from tests.waiting import wait_until
from tasks.steps import client

NAME = PROFILE = "ctlheal"
PORT = 18960
HOME = Path(os.path.expanduser("~"))
PROFILE_DIR = HOME / ".ipython" / f"profile_{PROFILE}"
RUN_DIR = HOME / ".ipp-cluster" / NAME / "host1"  # the master's
#: Loaded by ipcontroller from the profile: a controller that crashes at start while the flag is there.
CRASH_FLAG = HOME / f".{NAME}-crash"
CONTROLLER_CONFIG = f"import os\nif os.path.exists({str(CRASH_FLAG)!r}):\n    os._exit(3)\n"

#: A map made before the crash: 12 tasks of 3 s on 4 engines (of a client ``rc``), each of
#: which, as it begins, makes a file named after it in the folder MARKS; prints "submitted".
SUBMIT = """
import json, os, time
import ipyparallel as ipp
rc.wait_for_engines(4, timeout=60)
def nap(i):
    import pathlib, time
    pathlib.Path(MARKS, str(i)).touch()
    time.sleep(3)
    return i
ar = rc.load_balanced_view().map_async(nap, range(12))
print("submitted", flush=True)
"""
#: Then: how the map ended (each task's status, in order; the errors' names), and new work.
ENDED = """
ar.wait(timeout=120)
ended = time.monotonic()
statuses = [md["status"] for md in ar.metadata]  # a task each, in order: ok or error
try:
    ar.get(timeout=0)
    errors = []
except ipp.error.CompositeError as failed:
    errors = sorted({name for name, *_ in failed.elist})
except ipp.error.RemoteError as failed:
    errors = [failed.ename]
new = rc[:].apply_sync(os.getpid)
print(json.dumps({"ready": ar.ready(), "statuses": statuses, "errors": errors, "ended": ended,
                  "new": sorted(new)}))
"""


@pytest.fixture(scope="module")
def fab_here(fake_hosts, tmp_path_factory):
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT,
                                     engine_hosts=(2, 3))
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    (PROFILE_DIR / "ipcontroller_config.py").write_text(CONTROLLER_CONFIG)
    with fab_for(fake_hosts, inventory) as run:
        yield run
        CRASH_FLAG.unlink(missing_ok=True)
    (PROFILE_DIR / "ipcontroller_config.py").unlink()


@pytest.fixture
def cluster(fab_here):
    """The cluster up with all its engines and a controller that never restarted, whatever
    a test before did to it (each test passes alone and in any order)."""
    CRASH_FLAG.unlink(missing_ok=True)
    if "restarted" in master_notes(fab_here)[1]:  # a test before killed its controller
        assert fab_here("cluster.down").returncode == 0
    up = fab_here("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    yield fab_here
    CRASH_FLAG.unlink(missing_ok=True)
    if (fab_here.inventory / "cluster.env").read_text() != fab_here.settings:
        fab_here("cluster.down")  # its controller runs with the changed settings
        (fab_here.inventory / "cluster.env").write_text(fab_here.settings)


def controller_pids(master):
    """The pids of the controller's processes (the hub and its schedulers), not its nanny's."""
    return master.run(f"pgrep -f '^[^ ]*python[0-9.]* {RUN_DIR}/ipp_remote master[.]controller ' || true").split()


def kill_the_controller(master):
    """``kill -9`` every process of the controller; returns their pids. One that ended
    between pgrep and kill is no error (a controller just started ends some of its own)."""
    pids = controller_pids(master)
    assert len(pids) >= 2  # the hub and its scheduler processes
    master.run(f"kill -9 {' '.join(pids)} 2>/dev/null || true")
    return pids


def answers_in(seconds):
    """Seconds until a new client gets an answer from the controller (a client that fails
    meanwhile is tried again)."""
    began = time.monotonic()
    wait_until(lambda: with_client("print(json.dumps(len(c.ids)))", PROFILE, timeout=30) == 4,
               seconds, "a new client's answer from the controller: its 4 engines", interval=0.2)
    return time.monotonic() - began


def master_notes(cluster):
    """``cluster.status --json``, and what it notes of the master (the table's row may wrap)."""
    status = cluster("cluster.status", "--json")
    hosts = json.loads(status.stdout).get("hosts", [])
    return status, "; ".join(note for host in hosts if host["host"] == "127.0.2.1" for note in host["notes"])


def submitting(marks):
    """`SUBMIT`, its tasks marking their begin in the folder *marks*."""
    marks.mkdir()
    return SUBMIT.replace("MARKS", repr(str(marks)))


def kill_the_controller_mid_map(master, marks):
    """Kill -9 every process of the controller once 4 tasks of the map (`submitting` to
    *marks*) run, one on each engine, while 8 wait in the scheduler; returns the pids and when."""
    wait_until(lambda: len(list(marks.iterdir())) >= 4, 60, "4 tasks of the map running")
    return kill_the_controller(master), time.monotonic()


def assert_the_map_ended(report, killed, before):
    """Each task of the map ended within a minute of the kill: in the order they were sent,
    those done or running on the 4 engines at the kill (4 at least, 8 when the first 4 were
    done, on a loaded machine) with their results, those still queued in the scheduler that
    died (some) with the error that says to submit them again. The same engine processes
    under the same ids ran the client's new work."""
    assert report["ready"] and report["ended"] - killed < 60, report
    ran = report["statuses"].count("ok")
    assert report["statuses"] == ["ok"] * ran + ["error"] * (12 - ran) and 4 <= ran < 12, report
    assert report["errors"] == ["ControllerRestarted"], report
    assert engines_by_id(PROFILE) == before  # the same engine processes, under the same ids
    assert report["new"] == sorted(pid for _, pid in before.values())


@pytest.mark.parametrize("encrypt", ["no", "yes"])
def test_a_controller_killed_mid_map_comes_back_with_its_engines_and_the_map_ends(
        cluster, fake_hosts, encrypt, tmp_path):
    """The client is made by the lines ``cluster.connect`` prints (for a master it reaches
    directly): ipyparallel's own `Client`, with nothing of this project imported."""
    if encrypt == "yes":
        assert cluster("cluster.down").returncode == 0
        env = cluster.inventory / "cluster.env"
        env.write_text(env.read_text() + "ENCRYPT=yes\n")
        up = cluster("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "curve_serverkey" in (PROFILE_DIR / "security/ipcontroller-engine.json").read_text()
    master = fake_hosts.hosts[0]
    before = engines_by_id(PROFILE)
    connect = "\n".join(client.lines(PROFILE_DIR / "security" / "ipcontroller-client.json"))
    program = connect + submitting(tmp_path / "begun") + ENDED
    assert "ipp_cluster" not in program
    user = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert user.stdout.readline().strip() == "submitted", user.communicate(timeout=60)
        pids, killed = kill_the_controller_mid_map(master, tmp_path / "begun")
        took = answers_in(10)
        out, err = user.communicate(timeout=120)
    finally:
        user.kill()
    assert user.returncode == 0, err
    assert_the_map_ended(json.loads(out.strip().splitlines()[-1]), killed, before)
    assert not set(controller_pids(master)) & set(pids)
    print(f"controller answered {took:.1f} s after kill -9 (ENCRYPT={encrypt})")
    status, notes = master_notes(cluster)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "controller restarted 1 time, the last at " in notes
    assert cluster("cluster.down").returncode == 0  # no secret, no journal left behind
    assert sorted(path.name for path in RUN_DIR.iterdir()
                  if path.name.startswith(("controller.curve", "tasks-in-flight"))) == []


def test_a_notebooks_plain_ipp_client_gets_its_map_in_flight_at_a_controller_crash(
        cluster, fake_hosts, tmp_path):
    """A kernel of the master's Jupyter, as a notebook has one, runs ``ipp.Client()``."""
    token = cluster("master.url").stdout.strip().splitlines()[-1].split("token=")[1]
    printed = []
    with jupyter_kernel(PORT, token) as kernel:
        def run(code, timeout):
            reply = kernel.execute_interactive(code, timeout=timeout, output_hook=lambda message: (
                printed.append(message["content"].get("text", ""))))
            assert reply["content"]["status"] == "ok", (reply["content"], printed)
            return "".join(printed).strip().splitlines()[-1]

        before = engines_by_id(PROFILE)
        assert run("import ipyparallel as ipp\nrc = ipp.Client(timeout=20)\n"
                   + submitting(tmp_path / "begun"), 60) == "submitted"
        _, killed = kill_the_controller_mid_map(fake_hosts.hosts[0], tmp_path / "begun")
        report = json.loads(run(ENDED, 150))
    assert_the_map_ended(report, killed, before)


def test_jupyter_killed_answers_again_at_its_old_url(cluster, fake_hosts):
    url = cluster("master.url").stdout.strip().splitlines()[-1]
    token = url.split("token=")[1]
    api = f"http://127.0.0.1:{PORT}/api/status"
    request = urllib.request.Request(api, headers={"Authorization": f"token {token}"})
    master = fake_hosts.hosts[0]
    server = master.run(f"pgrep -f '[j]upyter-server .*--port={PORT}' || true").split()
    assert len(server) == 1
    master.run(f"kill -9 {server[0]}")

    def answers():
        with urllib.request.urlopen(request, timeout=5) as response:  # URLError until it listens
            return response.status == 200
    wait_until(answers, 10, "Jupyter's answer at its old URL", interval=0.2)
    assert master.run(f"pgrep -f '[j]upyter-server .*--port={PORT}'").split() != server
    status, notes = master_notes(cluster)
    assert "jupyter restarted 1 time" in notes


def test_a_controller_that_crashes_at_each_start_gives_up_and_status_says_so(cluster, fake_hosts):
    master = fake_hosts.hosts[0]
    CRASH_FLAG.touch()
    kill_the_controller(master)
    status = status_saying(cluster, "crash-looping", 120)  # at once, then 1, 2, 4, 8 s: 6th crash
    assert status.returncode == 1
    assert ("error: 127.0.2.1: controller not running; controller crash-looping: gave up: the"
            " controller ended 6 times in 5 min, the last time: exit code 3; fab cluster.logs"
            " --hosts=127.0.2.1 says why") in status.stderr, status.stderr
    logs = cluster("cluster.logs", "--hosts=127.0.2.1", "--lines=60").stdout
    assert "restart: the controller ended (signal 9 (SIGKILL)); starting it again now" in logs
    assert "gave up: the controller ended 6 times in 5 min" in logs
    CRASH_FLAG.unlink()
    up = cluster("cluster.up")  # a new controller, and the engines with it
    assert up.returncode == 0, up.stdout + up.stderr
    assert cluster("cluster.status").returncode == 0


def test_down_during_a_back_off_leaves_nothing_and_up_starts_no_second_controller(cluster,
                                                                                 fake_hosts):
    master = fake_hosts.hosts[0]
    CRASH_FLAG.touch()
    since = time.strftime("%Y-%m-%d %H:%M:%S")  # the log holds earlier tests' lines too
    kill_the_controller(master)
    log = RUN_DIR / f"{NAME}-controller.log"

    def third_back_off():
        text = log.read_text()
        assert [stamp for stamp in re.findall(r"^=== nanny ([0-9-]+ [0-9:]+): restart: .* starting it"
                                              r" again in 2 s$", text, re.MULTILINE)
                if stamp >= since], text[-2000:]
        return True
    wait_until(third_back_off, 60, f"the nanny in its third back-off, in {log}")
    started = cluster("master.start")  # its nanny waits: the controller runs, none starts
    assert "started" not in started.stdout, started.stdout + started.stderr
    nannies = master.run("pgrep -f '^[^ ]*python[0-9.]* [^ ]*/ipp_remote shared[.]nanny controller' || true").split()
    assert len(nannies) == 1
    down = cluster("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3)) == {}
    # nothing starts afterwards: not one process is left that could start it
    nothing_left(fake_hosts, (1, 2, 3))


def test_a_controller_that_exits_at_its_first_start_is_named_by_up_at_once(cluster, fake_hosts):
    assert cluster("cluster.down").returncode == 0
    CRASH_FLAG.touch()  # the profile's config exits: a broken setup, not a crash to mend
    began = time.monotonic()
    up = cluster("cluster.up")
    assert up.returncode == 1 and time.monotonic() - began < 60  # ENGINE_TIMEOUT: 120
    assert re.search(r"^error: 127\.0\.2\.1: exit 1: the controller's nanny gave up: the controller ended at"
                     r" its first start, after [0-9.]+ s \(exit code 3\): not a crash to mend; see ",
                     up.stderr, re.MULTILINE), up.stderr
    logs = cluster("cluster.logs", "--hosts=127.0.2.1", "--lines=30").stdout
    assert "restart:" not in logs.split(f"{NAME}-controller")[-1]  # started once, not again
    CRASH_FLAG.unlink()
    assert cluster("cluster.down").returncode == 0
    assert leftovers(fake_hosts, (1, 2, 3)) == {}


def hooked_env(path):
    """A Python environment at *path* as a user makes one with ``python -m venv``, that
    sees this one's packages (a ``.pth``; nothing to download), for ``cluster.install``."""
    if not (path / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = subprocess.run([str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
                              "'purelib'))"], capture_output=True, text=True, check=True).stdout.strip()
    shared = [p for p in sys.path if p.endswith("site-packages")]
    Path(purelib, "shared-packages.pth").write_text("\n".join(shared) + "\n")
    for name in ("ipcontroller", "ipengine", "jupyter", "jupyter-server"):  # as pip writes them
        text = Path(sys.prefix, "bin", name).read_text().split("\n", 1)[1]
        (path / "bin" / name).write_text(f"#!{path}/bin/python\n{text}")
        (path / "bin" / name).chmod(0o755)
    return path


def test_a_scripts_plain_ipp_client_in_the_cluster_env_gets_its_map_in_flight_at_a_crash(
        cluster, fake_hosts, tmp_path):
    """``python search.py`` on the master, with the Python of CLUSTER_ENV=~/... (a user's,
    made by ``cluster.install``, under each host's home): the same plain ``ipp.Client()`` as
    a notebook's, not a kernel, and its map ends when every controller process is killed."""
    assert cluster("cluster.down").returncode == 0
    env_folder = hooked_env(HOME / f"{NAME}-env")
    settings = cluster.inventory / "cluster.env"
    as_it_was = settings.read_text()
    settings.write_text(re.sub(r"(?m)^CLUSTER_ENV=.*$", f"CLUSTER_ENV=~/{NAME}-env", as_it_was))
    try:
        script_survives_a_crash(cluster, fake_hosts, env_folder, tmp_path / "begun")
    finally:  # the cluster of this environment down, and nothing of it left in the home
        cluster("cluster.down")
        settings.write_text(as_it_was)
        shutil.rmtree(env_folder, ignore_errors=True)


def script_survives_a_crash(cluster, fake_hosts, env_folder, marks):
    """The test above, once CLUSTER_ENV names *env_folder*."""
    installed = cluster("cluster.install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    up = cluster("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    master = fake_hosts.hosts[0]
    assert f"{env_folder}/bin/python" in master.run(
        f"pgrep -af '{RUN_DIR}/ipp_remote master[.]controller ' || true")  # ~ expanded there
    before = engines_by_id(PROFILE)
    script = HOME / f"{NAME}-search.py"
    script.write_text("import ipyparallel as ipp\nrc = ipp.Client(timeout=20)\n" + submitting(marks) + ENDED)
    user = subprocess.Popen([str(env_folder / "bin" / "python"), str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=HOME,
                            env=dict(os.environ, IPP_PROFILE=PROFILE))  # as the master's Jupyter sets it
    try:
        assert user.stdout.readline().strip() == "submitted", user.communicate(timeout=60)
        _, killed = kill_the_controller_mid_map(master, marks)
        out, err = user.communicate(timeout=150)
    finally:
        user.kill()
        script.unlink()
    assert user.returncode == 0, err
    assert_the_map_ended(json.loads(out.strip().splitlines()[-1]), killed, before)
