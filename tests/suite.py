"""
The whole suite at once, as the README's test command runs it: ``python -m tests.suite``.

The test files are dealt into a few shards that run side by side, each a ``pytest`` in
namespaces of its own (``tests/isolated.sh``): its own 127.0.2.N for the fake hosts, its own
users, /etc, /home, /root, /tmp and screen sessions, and its own Slurm daemons. Nothing a
test does can be seen by a test of another shard, as when the files run one after another.
Why: an end-to-end test spends most of its time waiting (for an sshd, a Python's imports,
Slurm's next scheduling pass), so shards overlap those waits, on any number of cores.

One shard keeps this machine's network: the files marked ``pytest.mark.network`` (they reach
PyPI or Debian's mirrors) run there. The others have a network of their own, with no way out,
so the wheels the hosts install (the ``wheelhouse`` fixture) are downloaded once, first.
Without root (no namespaces; the end-to-end tests skip themselves then) it is one pytest.

    python -m tests.suite [--shards N] [PYTEST OPTIONS] [FILES]
    (the options go to every shard; FILES, all test files when none is named; with a
    test named FILE::TEST, it is one pytest, here)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.wheels import download_wheelhouse

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
ARTIFACTS = PROJECT / "test-artifacts"

#: Seconds each file took (setup, calls and teardown) in a whole run of four shards under
#: three busy loops on a 2-core machine (Dec 2026), to deal the files evenly: the junit
#: reports that each run leaves in test-artifacts/ give them again. A file not named here
#: counts as `UNKNOWN` seconds.
SECONDS = {
    "test_install.py": 551, "test_as_plain_user.py": 541, "test_e2e_slurm.py": 495,
    "test_e2e_dashboard.py": 468, "test_e2e_login_shells.py": 358,
    "test_e2e_controller_healing.py": 313, "test_e2e_faults.py": 244, "test_e2e_install.py": 209,
    "test_e2e_keeper.py": 203, "test_e2e_self_healing.py": 181, "test_e2e_lifecycle.py": 179,
    "test_e2e_per_host.py": 173, "test_e2e_scale.py": 158, "test_e2e_mistakes.py": 149,
    "test_e2e_resources.py": 119, "test_e2e_security.py": 114, "test_e2e_jupyter_token.py": 98,
    "test_e2e_network.py": 90, "test_e2e_notebooks.py": 90, "test_e2e_shared_hosts.py": 87,
    "test_e2e_operate.py": 80, "test_supervisor_engines.py": 80, "test_docs.py": 53,
    "test_e2e_knownhosts.py": 53, "test_e2e_ports.py": 51, "test_e2e_slurm_by_hand.py": 50,
    "test_probe.py": 43, "test_e2e_no_shared_home.py": 39, "test_commands.py": 34,
    "test_engine_resources.py": 32, "test_e2e_slurm_page.py": 30, "test_e2e_interface.py": 29,
    "test_supervisor.py": 27, "test_docs_json.py": 24, "test_ansible_inventory.py": 23,
    "test_e2e_local.py": 20, "test_engine_steps.py": 17, "test_e2e_yaml_inventory.py": 17,
    "test_slurm_by_hand.py": 10, "test_slurm.py": 6, "test_nanny.py": 6, "test_ipp_cluster.py": 5,
    "test_ports.py": 5, "test_host_inbox.py": 4, "test_runner.py": 3, "test_dashboard_stream.py": 2,
    "test_bench_smallest.py": 2, "test_forward.py": 2, "test_controller_interface.py": 2,
    "test_checks.py": 1, "test_forged_lines.py": 1, "test_keeper.py": 1, "test_loopback.py": 1,
    "test_progress.py": 1, "test_suite.py": 1, "test_supervisor_reaping.py": 1,
    "test_controller.py": 1, "test_documents.py": 1, "test_host_sample.py": 1, "test_report.py": 1,
    "test_timers.py": 1, "test_version.py": 1, "test_waiting.py": 1, "test_address.py": 1,
    "test_bench_methods.py": 1, "test_dashboard.py": 1, "test_environment.py": 1,
    "test_inventory.py": 1, "test_screens.py": 1, "test_tree.py": 1, "test_bench_report.py": 1,
    "test_dashboard_listener.py": 1, "test_facts.py": 1, "test_journal.py": 1,
    "test_knownhosts.py": 1, "test_session.py": 1,
}
UNKNOWN = 20


def network_files(files):
    """The files that need this machine's network: they say ``pytest.mark.network``."""
    return [path for path in files if "pytest.mark.network" in path.read_text()]


def deal(files, shards):
    """*files* in *shards* lists of about equal time, the longest first (LPT); the files
    that need the network all go to the first shard."""
    loads = [[0.0, []] for _ in range(shards)]
    networked = network_files(files)
    for path in networked:
        loads[0][0] += SECONDS.get(path.name, UNKNOWN)
        loads[0][1].append(path)
    rest = sorted((p for p in files if p not in networked), key=lambda p: -SECONDS.get(p.name, UNKNOWN))
    for path in rest:
        lightest = min(loads, key=lambda load: load[0])
        lightest[0] += SECONDS.get(path.name, UNKNOWN)
        lightest[1].append(path)
    return [sorted(names) for _, names in loads if names]


def start_shard(number, files, options, scratch, env):
    """Start shard *number* on *files*; returns ``(process, log path, junit path)``."""
    own = scratch / f"shard{number}"
    own.mkdir()
    log, junit = ARTIFACTS / f"shard{number}.log", ARTIFACTS / f"shard{number}.xml"
    unshare = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
    network = "shared" if number == 0 else "own"
    if network == "own":
        unshare.insert(1, "--net")
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}",
              *options, *(str(path.relative_to(PROJECT)) for path in files)]
    process = subprocess.Popen([*unshare, "bash", str(TESTS / "isolated.sh"), str(own), network, *pytest],
                               cwd=PROJECT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return process, log, junit


def file_times(junit):
    """``{file name: seconds}`` from a junit report (each test's setup, call and teardown)."""
    times = {}
    if not junit.exists():
        return times
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("classname", "").split(".")[1:2]
        if name:
            times[name[0] + ".py"] = times.get(name[0] + ".py", 0.0) + float(case.get("time", 0))
    return times


def run(shards, options):
    files = [Path(option).resolve() for option in options if option.endswith(".py") and os.path.isfile(option)]
    options = [option for option in options if Path(option).resolve() not in files]
    dealt = deal(files or sorted(TESTS.glob("test_*.py")), shards)
    ARTIFACTS.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ipp-suite.", dir="/var/tmp"))
    started, running = time.monotonic(), []
    try:
        env = dict(os.environ)
        print("suite: the cluster's wheels, for the shards without a network ...", flush=True)
        env["IPP_TEST_WHEELHOUSE"] = str(download_wheelhouse(scratch / "wheelhouse"))
        running += [start_shard(n, names, options, scratch, env) for n, names in enumerate(dealt)]
        for n, names in enumerate(dealt):
            print(f"suite: shard {n} ({'network' if n == 0 else 'own network'}): "
                  f"{' '.join(p.name for p in names)}", flush=True)
        codes, times = [], {}
        for n, (process, log, junit) in enumerate(running):
            codes.append(process.wait())
            print(f"\n===== shard {n} (exit {codes[-1]}) =====", flush=True)
            sys.stdout.write(log.read_text())
            times.update(file_times(junit))
    finally:
        for process, *_ in running:
            if process.poll() is None:
                process.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nsuite: {len(dealt)} shards, {time.monotonic() - started:.0f} s; the slowest files:")
    for name, seconds in sorted(times.items(), key=lambda item: -item[1])[:15]:
        print(f"  {seconds:7.1f} s  {name}")
    failed = [code for code in codes if code not in (0, 5)]
    return failed[0] if failed else (5 if all(code == 5 for code in codes) else 0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4, help="pytests run at once (default 4)")
    args, options = parser.parse_known_args(argv)
    named_tests = any("::" in option for option in options)  # a test or two: this process runs them
    if os.geteuid() != 0 or not shutil.which("unshare") or args.shards < 2 or named_tests:
        return subprocess.run([sys.executable, "-m", "pytest", *options], cwd=PROJECT).returncode
    return run(args.shards, options)


if __name__ == "__main__":
    sys.exit(main())
