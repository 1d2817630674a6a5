"""
Unit tests of how engines fit their host: threads per engine, one engine per GPU, and
the user's SETUP, run here by a local ``/bin/sh -s`` as a host runs them (the ``host``
fixture of `tests.test_commands`), with a stand-in ``nvidia-smi`` (`tests.fakegpu`) and
a conda-style activation script. No SSH, no root.
"""

import dataclasses
import os

import pytest

from tasks import commands
from tests import fakegpu
from tests.test_commands import calls, facts, host, needs_screen, node, session_of  # noqa: F401 (host: a fixture)

CORES = os.cpu_count()


def engines_env(home, count):
    """``{engine number: {cuda, threads, path}}`` as each stand-in ipengine saw them."""
    seen = {}
    for lines in calls(home, "ipengine", count):
        number = int(session_of(lines).split("/")[1])
        seen[number] = dict(line.split("=", 1) for line in lines if line.split("=")[0] in
                            ("cuda", "threads", "path"))
    return seen


@pytest.fixture
def gpus(tmp_path):
    """A folder holding a stand-in nvidia-smi for 4 GPUs, and the PATH that finds it."""
    folder = tmp_path / "gpu-bin"
    folder.mkdir()
    fakegpu.install(folder, 4)
    return f"{folder}:{os.environ['PATH']}"


@needs_screen
@pytest.mark.parametrize("engines, threads", [(CORES, 1), (1, CORES), (2 * CORES, 1)])
def test_the_cores_are_shared_among_the_engines_in_every_thread_setting(host, engines, threads):
    host(commands.write_engine_file("{}"))
    started = facts(host(commands.start_engines(host.settings, node("n", engines=engines))))
    assert (started["expected"], started["threads"]) == (str(engines), str(threads))
    seen = engines_env(host.home, engines)
    assert {each["threads"] for each in seen.values()} == {"/".join([str(threads)] * 5)}
    assert {each["cuda"] for each in seen.values()} == {"unset"}  # no gpus=: left as it was


@needs_screen
def test_threads_from_the_inventory_win_and_a_value_setup_exported_wins_over_them(host):
    host(commands.write_engine_file("{}"))
    facts(host(commands.start_engines(host.settings, node("n", engines=2, threads=3))))
    assert {e["threads"] for e in engines_env(host.home, 2).values()} == {"3/3/3/3/3"}
    host(commands.stop_engines())
    for path in host.home.glob("ipengine.*.args"):
        path.unlink()
    setup = "export OMP_NUM_THREADS=7"
    out = host(commands.start_engines(host.settings, node("n", engines=1, threads=3)), setup=setup)
    assert facts(out)["threads"] == "7"
    assert engines_env(host.home, 1)[1]["threads"] == "7/3/3/3/3"


@needs_screen
def test_gpus_auto_starts_one_engine_per_gpu_each_on_its_own_device(host, gpus):
    host(commands.write_engine_file("{}"))
    started = facts(host(commands.start_engines(host.settings, node("g", gpus="auto")), PATH=gpus))
    threads = str(max(1, CORES // 4))
    assert (started["expected"], started["threads"]) == ("4", threads)
    assert started["devices"].split() == [fakegpu.uuid(i) for i in range(4)]
    seen = engines_env(host.home, 4)
    assert {n: e["cuda"] for n, e in seen.items()} == {n: fakegpu.uuid(n - 1) for n in (1, 2, 3, 4)}
    status = facts(host(commands.host_status(node("g", gpus="auto")), PATH=gpus))
    assert (status["expected"], status["threads"]) == ("4", threads)


@needs_screen
def test_chosen_gpus_take_more_engines_round_robin(host, gpus):
    host(commands.write_engine_file("{}"))
    facts(host(commands.start_engines(host.settings, node("g", gpus="3,1", engines=5)), PATH=gpus))
    seen = engines_env(host.home, 5)
    order = [fakegpu.uuid(3), fakegpu.uuid(1)]
    assert {n: e["cuda"] for n, e in seen.items()} == {n: order[(n - 1) % 2] for n in range(1, 6)}


@needs_screen
def test_without_nvidia_smi_chosen_gpus_are_given_by_index(host):
    host(commands.write_engine_file("{}"))
    facts(host(commands.start_engines(host.settings, node("g", gpus="0,2"))))
    assert {n: e["cuda"] for n, e in engines_env(host.home, 2).items()} == {1: "0", 2: "2"}


@pytest.mark.parametrize("chosen, reason", [
    ("auto", "gpus=auto but nvidia-smi lists no GPU here"),
    ("1,4", "gpus=1,4: nvidia-smi lists no GPU 4 here"),
])
def test_gpus_that_are_not_there_start_nothing_and_say_why(host, tmp_path, chosen, reason):
    folder = tmp_path / "no-gpu"
    folder.mkdir()
    fakegpu.install(folder, 4 if chosen != "auto" else 0)
    path = f"{folder}:{os.environ['PATH']}"
    host(commands.write_engine_file("{}"))
    out = host(commands.start_engines(host.settings, node("g", gpus=chosen)), PATH=path)
    assert (out.returncode, out.stderr.strip().splitlines()[-1]) == (1, reason)
    assert not list(host.home.glob("ipengine.*.args"))
    checked = facts(host(commands.facts(None, chosen), PATH=path))
    assert checked["gpu_problem"] == reason


def test_facts_name_the_gpus_and_a_missing_nvidia_smi(host, gpus):
    assert facts(host(commands.facts(), PATH=gpus))["gpus"] == f"4 x {fakegpu.MODEL}"
    bare = facts(host(commands.facts(None, "auto"), PATH="/usr/bin:/bin"))
    assert (bare["gpus"], bare["gpu_problem"]) == ("", "gpus=auto but nvidia-smi is not on the PATH here")


CONDA_SH = """\
conda() {  # a conda-style activation: conda activate NAME puts envs/NAME/bin first on PATH
  [ "$1" = activate ] && [ -d "$CONDA_ROOT/envs/$2" ] || { echo "EnvironmentNameNotFound: $2" >&2; return 1; }
  export CONDA_DEFAULT_ENV="$2" PATH="$CONDA_ROOT/envs/$2/bin:$PATH"
}
"""


@needs_screen
def test_setup_runs_before_the_programs_and_what_it_exports_reaches_them(host, tmp_path):
    root = tmp_path / "conda"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "conda.sh").write_text(f"CONDA_ROOT={root}\n" + CONDA_SH)
    env_bin = root / "envs" / "lab" / "bin"
    env_bin.parent.mkdir(parents=True)
    (host.home / "env" / "bin").rename(env_bin)  # the programs are only in the conda env
    (env_bin / "python3").symlink_to("python")
    settings = dataclasses.replace(host.settings, cluster_env="")
    setup = f". {root}/etc/conda.sh && conda activate lab"
    host(commands.write_engine_file("{}"), settings=settings)
    checked = facts(host(commands.facts(), settings=settings, setup=setup))
    assert checked["missing"] == ""  # ipcontroller, ipengine, jupyter: found on the PATH it made
    started = facts(host(commands.start_engines(settings, node("n", engines=1)), settings=settings,
                         setup=setup))
    assert started["started"] == "1"
    assert engines_env(host.home, 1)[1]["path"].startswith(f"{env_bin}:")
    failed = host(commands.facts(), settings=settings, setup=f". {root}/etc/conda.sh && conda activate nope")
    assert failed.returncode == 1
    assert failed.stderr.strip() == "SETUP failed (exit 1): EnvironmentNameNotFound: nope"
    host(commands.stop_engines(), settings=settings)


def test_setup_never_reads_the_script_and_runs_quoted_as_written(host, tmp_path):
    marker = tmp_path / "ran"
    setup = f"cat > /dev/null; echo \"it's $(echo run) as written\" > '{marker}'"
    out = host(commands.user_command("echo after=yes"), setup=setup)
    assert "after=yes" in out.stdout, out.stderr  # cat read /dev/null, not the rest of the script
    assert marker.read_text() == "it's run as written\n"


def test_the_status_plans_the_gpus_that_setup_puts_on_the_path(host, tmp_path):
    """``module load cuda`` puts nvidia-smi on the PATH: the status plans as start_engines
    does, after the host's SETUP."""
    cuda = tmp_path / "cuda" / "bin"
    cuda.mkdir(parents=True)
    fakegpu.install(cuda, 2)
    setup = f'PATH="{cuda}:$PATH"; export PATH'
    status = facts(host(commands.host_status(node("g", gpus="auto")), setup=setup, PATH="/usr/bin:/bin"))
    assert (status["expected"], status.get("plan_problem")) == ("2", None)
    failed = facts(host(commands.host_status(node("g", gpus="auto")), setup="echo no cuda; false"))
    assert (failed["expected"], failed["plan_problem"]) == ("0", "SETUP failed (exit 1): no cuda ")
    # without gpus= the plan needs nothing of SETUP, which is not run for it (it can take seconds)
    cpu = facts(host(commands.host_status(node("c", engines=3)), setup="echo no cuda; false"))
    assert (cpu["expected"], cpu.get("plan_problem")) == ("3", None)


def test_the_facts_say_how_many_engines_the_host_would_start(host, gpus):
    """What the master's heartbeat and open files are sized for (one engine per GPU, not per core)."""
    assert facts(host(commands.facts(None, "auto"), PATH=gpus))["engines"] == "4"
    assert facts(host(commands.facts(None, "auto", 2), PATH=gpus))["engines"] == "2"
    assert facts(host(commands.facts(), PATH=gpus))["engines"] == str(CORES)
    missing = facts(host(commands.facts(None, "0,7"), PATH=gpus))
    assert "engines" not in missing and missing["gpu_problem"] == "gpus=0,7: nvidia-smi lists no GPU 7 here"
