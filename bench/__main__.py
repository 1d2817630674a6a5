"""
``python -m bench [--quick | --smallest | --scale] [--rounds N] [--out DIR]``: run the
benchmark, print its Markdown tables, and write them, every sample and the plot to DIR
(results.md, results.json, results.png). A full run into the default ``bench/results``
also writes its tables into the README, between the ``bench-results`` markers.
``--scale`` runs the scale benchmark alone (`bench.scale`: hundreds of engines) into
scale.md and scale.json, and the README between the ``bench-scale`` markers; ``--blas``
the threads-per-engine benchmark alone (`bench.blas`) into blas.md and blas.json, and the
README between the ``bench-blas`` markers; ``--healing`` the self-healing measures alone
(`bench.healing`: engines and controller, 5 rounds unless told) into healing.md and
healing.json, and the README between the ``bench-healing`` markers; ``--dashboard`` what
the dashboard costs the controller alone (`bench.dashboard`, 5 rounds unless told) into
dashboard.md and dashboard.json, and the README between the ``bench-dashboard`` markers.
"""

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from tests.sshhosts import FakeHosts, why_not_available

from . import blas, dashboard, healing, methods, report, scale

FULL = dict(hosts=(1, 2, 4, 8), per_host=(1, 2), control=(1, 8, 32, 64), threads=(64, 256), rounds=3,
            healing=7)
QUICK = dict(hosts=(2,), per_host=(2,), control=(1, 8), threads=(8, 32), rounds=1, healing=3)
#: What the test suite runs (tests/test_bench.py), so that the benchmark cannot rot unseen.
SMALLEST = dict(hosts=(1,), per_host=(1,), control=(1,), threads=(2,), rounds=1, healing=1)
README = methods.PROJECT / "README.md"
MARKERS = ("<!-- bench-results -->\n", "<!-- /bench-results -->\n")
SCALE_MARKERS = ("<!-- bench-scale -->\n", "<!-- /bench-scale -->\n")
BLAS_MARKERS = ("<!-- bench-blas -->\n", "<!-- /bench-blas -->\n")
HEALING_MARKERS = ("<!-- bench-healing -->\n", "<!-- /bench-healing -->\n")
DASHBOARD_MARKERS = ("<!-- bench-dashboard -->\n", "<!-- /bench-dashboard -->\n")
FIRST_HOST = 101  # 127.0.2.101 and up: never the test suite's hosts


def say(text):
    print(text, file=sys.stderr, flush=True)


def startup(fake_hosts, folder, layouts, rounds):
    """Every method up then down on every layout, *rounds* times, alternating the order."""
    every = [methods.FabCluster(fake_hosts, folder), methods.IpclusterSSH(fake_hosts),
             methods.LocalFloor()]
    times = defaultdict(list)
    for round_ in range(rounds):
        order = every[round_ % 3:] + every[:round_ % 3]
        for layout in layouts:
            for method in order:
                up = method.up(layout)
                down = method.down()
                times[(method.label, "up", layout.label)].append(up)
                times[(method.label, "down", layout.label)].append(down)
                say(f"round {round_ + 1}/{rounds}  {layout.label:>6}  {method.label:<14}"
                    f" up {up:6.2f} s  down {down:6.2f} s")
    return times


def control_path(fake_hosts, folder, sizes, rounds):
    """``cluster.status`` (with the default cap of 32 connections, and with 64) and
    ``cluster.run true`` on each number of hosts, and the floor: OpenSSH's ``ssh HOST true``
    on as many hosts, 32 at a time."""
    tasks = [("cluster.status", ("cluster.status",), 32, 3),  # 3: the cluster is stopped
             ("cluster.status, PARALLEL=64", ("cluster.status",), 64, 3),
             ("cluster.run true", ("cluster.run", "true"), 32, 0)]
    control = defaultdict(list)
    for round_ in range(rounds):
        for hosts in sizes:
            for label, task, parallel, code in tasks:
                seconds = methods.control_path(fake_hosts, folder, hosts, task, parallel, code)
                control[label, hosts].append(seconds)
                say(f"round {round_ + 1}/{rounds}  {hosts:>3} hosts  {label:<28} {seconds:6.2f} s")
            seconds = methods.ssh_floor(fake_hosts, hosts)
            control[report.FLOOR, hosts].append(seconds)
            say(f"round {round_ + 1}/{rounds}  {hosts:>3} hosts  {report.FLOOR:<28} {seconds:6.2f} s")
    return control


def threads(fake_hosts, folder, sizes):
    """The peak thread count of ``fab cluster.run true`` on each number of hosts (real ones,
    then silent ones past the fake hosts)."""
    peaks = {}
    for total in sizes:
        peaks[total] = methods.peak_threads(fake_hosts, folder, min(total, len(fake_hosts.hosts)), total)
        say(f"{total:>4} hosts  peak threads of fab {peaks[total]}")
    return peaks


def write_readme(text, markers=MARKERS):
    """Put *text* between the README's *markers*."""
    readme = README.read_text()
    start, end = (readme.index(marker) for marker in markers)
    README.write_text(readme[:start + len(markers[0])] + text + readme[end:])


def publish(out, name, text, data, markers, into_readme):
    """Print *text* and write it to *out*/NAME.md, *data* (and the machine) to NAME.json
    and, *into_readme*, the text into the README between *markers*."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps({"machine": report.machine(), **data}, indent=1))
    if into_readme:
        write_readme(text, markers)
    print(text)


def run_scale(out, rounds, into_readme):
    """The scale benchmark (`bench.scale`), its table printed and written to *out*."""
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(5, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir  # ipyparallel's own profiles go there
        rows = scale.measure(fake_hosts, Path(ipython_dir), rounds, say)
    text = (f"Machine: {report.machine()}. {rounds} round(s); time: median (min-max).\n\n"
            + scale.table(rows) + "\n")
    publish(out, "scale", text, {"runs": rows}, SCALE_MARKERS, into_readme)


def run_blas(out, rounds, into_readme):
    """The threads-per-engine benchmark (`bench.blas`), its table printed and written to *out*."""
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(2, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir
        samples = blas.measure(fake_hosts, Path(ipython_dir), rounds, say)
    text = (f"Machine: {report.machine()}. {rounds} round(s); {blas.PRODUCTS} products of"
            f" {blas.SIZE}x{blas.SIZE} matrices on each engine, all engines at once; median over"
            " engines and rounds (min-max).\n\n" + blas.blas_table(samples) + "\n")
    publish(out, "blas", text, {"seconds": samples}, BLAS_MARKERS, into_readme)


def run_healing(out, rounds, into_readme):
    """The self-healing measures (`bench.healing`), their table printed and written to *out*."""
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(2, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir
        samples = healing.measure(fake_hosts, Path(ipython_dir), rounds)
        samples.update(healing.measure_controller(fake_hosts, Path(ipython_dir), rounds))
    text = (f"Machine: {report.machine()}. {rounds} round(s); median (min-max).\n\n"
            + report.healing_table(samples) + "\n")
    publish(out, "healing", text, {"seconds": samples}, HEALING_MARKERS, into_readme)


def run_dashboard(out, rounds, into_readme):
    """What the dashboard costs (`bench.dashboard`), its table printed and written to *out*."""
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(2, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir
        samples = dashboard.measure(fake_hosts, Path(ipython_dir), rounds)
    text = (f"Machine: {report.machine()}. {rounds} round(s); median (min-max).\n\n"
            + dashboard.dashboard_table(samples) + "\n")
    publish(out, "dashboard", text, {"samples": samples}, DASHBOARD_MARKERS, into_readme)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one small size, one round")
    parser.add_argument("--smallest", action="store_true",
                        help="one engine host, one round: the test suite's run")
    parser.add_argument("--scale", action="store_true",
                        help="the scale benchmark alone: 200 engines, and 120 on a cramped master")
    parser.add_argument("--blas", action="store_true",
                        help="the threads-per-engine benchmark alone: BLAS on every engine of a host")
    parser.add_argument("--healing", action="store_true",
                        help="the self-healing measures alone: engines and controller")
    parser.add_argument("--dashboard", action="store_true",
                        help="what the dashboard costs the controller, alone")
    parser.add_argument("--rounds", type=int, help="rounds of every measure (default 3, quick 1)")
    parser.add_argument("--out", help="folder for results.md and results.png "
                                      "(default bench/results, or a temporary one with --quick)")
    args = parser.parse_args()
    plan = SMALLEST if args.smallest else QUICK if args.quick else FULL
    args.quick = args.quick or args.smallest  # neither writes into the README
    rounds = args.rounds or plan["rounds"]
    out = Path(args.out or (tempfile.mkdtemp(prefix="ippbench-") if args.quick
                            else methods.PROJECT / "bench" / "results"))
    reason = why_not_available()
    if reason:
        sys.exit(f"error: {reason}")
    if methods.cluster_processes():
        sys.exit("error: cluster processes already run on this machine; stop them first, "
                 "they would be counted as left behind:\n" + "\n".join(methods.cluster_processes()))

    if args.scale:
        run_scale(out, rounds, into_readme=not args.out and not args.quick)
        return
    if args.blas:
        run_blas(out, rounds, into_readme=not args.out and not args.quick)
        return
    if args.healing:
        run_healing(out, args.rounds or 5, into_readme=not args.out and not args.quick)
        return
    if args.dashboard:
        run_dashboard(out, args.rounds or 5, into_readme=not args.out and not args.quick)
        return
    count = max(max(plan["control"]), max(plan["hosts"]) + 1, min(plan["threads"]))
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(count, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir  # ipyparallel's own profiles go there
        folder = Path(ipython_dir)
        master, engine_hosts = fake_hosts.hosts[0], fake_hosts.hosts[1:]
        layouts = [methods.Layout(master, tuple(engine_hosts[:n]), per_host)
                   for per_host in plan["per_host"] for n in plan["hosts"]]
        say(f"{count} fake hosts up; {rounds} round(s)")
        fab_list = [methods.fab_list() for _ in range(max(3, rounds))]
        times = startup(fake_hosts, folder, layouts, rounds)
        control = control_path(fake_hosts, folder, plan["control"], rounds)
        peaks = threads(fake_hosts, folder, plan["threads"])
        healed = healing.measure(fake_hosts, folder, plan["healing"])
        healed.update(healing.measure_controller(fake_hosts, folder, plan["healing"]))
        say(f"self-healing: {healed}")
        products = blas.measure(fake_hosts, folder, rounds, say)
        looked = dashboard.measure(fake_hosts, folder, rounds)

    out.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join([
        f"Machine: {report.machine()}. {rounds} round(s); median (min-max).",
        "Engines up (until every engine registered) and down (until no process is left):",
        report.startup_table(times, layouts),
        "Control path (fake hosts, no engines running), and its floor: OpenSSH's `ssh HOST true`"
        " on as many hosts, 32 at a time:",
        report.control_table(control, plan["control"]),
        "The control path as a multiple of its floor:",
        report.floor_table(control, plan["control"]),
        report.threads_line(peaks),
        report.healing_table(healed),
        f"Threads per engine: {blas.PRODUCTS} products of {blas.SIZE}x{blas.SIZE} matrices on"
        " each engine of one host, all engines at once:",
        blas.blas_table(products),
        "What the dashboard costs the controller:",
        dashboard.dashboard_table(looked),
        f"`fab -l`: {report.cell(fab_list)}",
        report.goals(times, layouts, control, plan["control"], fab_list),
    ]) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({  # every sample, to plot or compare again
        "machine": report.machine(), "fab -l": fab_list,
        "startup": [[*key, samples] for key, samples in times.items()],
        "control": [[*key, samples] for key, samples in control.items()],
        "threads": peaks, "healing": healed, "blas seconds": products,
        "dashboard": looked}, indent=1))
    report.plot(times, layouts, out / "results.png")
    if not args.out and not args.quick:
        write_readme(text)
    print(text)
    say(f"written: {out / 'results.md'}, {out / 'results.png'}")


if __name__ == "__main__":
    main()
