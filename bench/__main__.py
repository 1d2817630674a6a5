"""
``python -m bench [--quick | --smallest | --scale | --blas | --healing | --dashboard | --slurm |
--throughput] [--rounds N] [--out DIR]``: run the
benchmark, print its Markdown tables, and write them, every sample and the plot to DIR
(results.md, results.json, results.png). A full run into the default ``bench/results``
also writes its tables into the documentation page that holds the ``bench-results``
markers (docs/speed.md) and its plot into docs/img/bench-results.png.
``--scale`` runs the scale benchmark alone (`bench.scale`: hundreds of engines) into
scale.md and scale.json (and the page with the ``bench-scale`` markers); ``--blas``
the threads-per-engine benchmark alone (`bench.blas`) into blas.md and blas.json (the
``bench-blas`` markers); ``--healing`` the self-healing measures alone (`bench.healing`:
engines and controller, 5 rounds unless told) into healing.md and healing.json (the
``bench-healing`` markers); ``--dashboard`` what the dashboard costs the controller alone
(`bench.dashboard`, 5 rounds unless told) into dashboard.md and dashboard.json (the
``bench-dashboard`` markers); ``--slurm`` engines in a Slurm allocation against
ipyparallel's Slurm launcher alone (`bench.slurm`, 5 rounds unless told) into slurm.md
and slurm.json (the ``bench-slurm`` markers); ``--throughput`` the project's controller beside
ipyparallel's with short tasks alone (`bench.throughput`, 5 rounds unless told, no fake
hosts) into throughput.md and throughput.json (the ``bench-throughput`` markers).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.sshhosts import FakeHosts, why_not_available

from . import blas, dashboard, healing, methods, report, scale, slurm, throughput
from .publish import DOCS, publish, write_docs

FULL = dict(hosts=(1, 2, 4, 8), per_host=(1, 2), control=(1, 8, 32, 64), threads=(64, 256), rounds=3,
            healing=7)
QUICK = dict(hosts=(2,), per_host=(2,), control=(1, 8), threads=(8, 32), rounds=1, healing=3)
#: What the test suite runs (tests/test_bench.py), so that the benchmark cannot rot unseen.
SMALLEST = dict(hosts=(1,), per_host=(1,), control=(1,), threads=(2,), rounds=1, healing=1)
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


def attempt(what, measure, missing):
    """
    *measure()*, or None where it fails: then *what* and why are said on stderr and kept in
    *missing*, so that one measurement that cannot be made (a port taken, a step that
    failed) ends none of the others.
    """
    try:
        return measure()
    except Exception as error:  # BenchError, OSError, a subprocess' timeout...
        missing[what] = f"{type(error).__name__}: {error}"
        say(f"error: {what} not measured: {missing[what]}")
        try:
            methods.end_leftovers()  # what it started must not skew or fail the next
        except methods.BenchError as left:
            say(f"error: {left}")
        return None


@contextmanager
def fake_cluster(count):
    """*count* fake hosts (127.0.2.101 and up) and a fresh folder for ipyparallel's profiles."""
    with tempfile.TemporaryDirectory() as ipython_dir, FakeHosts(count, FIRST_HOST) as fake_hosts:
        os.environ["IPYTHONDIR"] = ipython_dir  # ipyparallel's own profiles go there
        yield fake_hosts, Path(ipython_dir)


def both_healings(fake_hosts, folder, rounds):
    """The engines' self-healing measures, then the controller's (`bench.healing`)."""
    samples = healing.measure(fake_hosts, folder, rounds)
    samples.update(healing.measure_controller(fake_hosts, folder, rounds))
    return samples


@dataclass(frozen=True)
class Alone:
    """A benchmark run alone (``--scale``...): on *hosts* fake hosts, *rounds* times unless
    told (None: the plan's), *measure(fake hosts, folder, rounds)* makes the samples kept
    under *key* in NAME.json; *caption* says what *table(samples)* shows."""

    hosts: int
    rounds: int
    measure: object
    key: str
    caption: str
    table: object


ALONE = {
    "scale": Alone(5, 3, lambda *on: scale.measure(*on, say), "runs", "time: median (min-max).",
                   scale.table),
    "blas": Alone(2, None, lambda *on: blas.measure(*on, say), "seconds",
                  f"{blas.PRODUCTS} products of {blas.SIZE}x{blas.SIZE} matrices on each engine,"
                  " all engines at once; median over engines and rounds (min-max).", blas.blas_table),
    "healing": Alone(2, 5, both_healings, "seconds", "median (min-max).", report.healing_table),
    "dashboard": Alone(2, 5, lambda *on: dashboard.measure(*on), "samples", "median (min-max).",
                       dashboard.dashboard_table),
    "slurm": Alone(5, 5, lambda *on: slurm.measure(*on, say), "seconds",
                   "a real Slurm 22.05 on the fake hosts; median (min-max).", slurm.slurm_table),
}


def run_alone(name, out, rounds, into_docs):
    """The benchmark *name* of `ALONE`, its table printed and written to *out* (`publish`);
    where it cannot measure, it says why and exits 1."""
    bench, missing = ALONE[name], {}
    with fake_cluster(bench.hosts) as (fake_hosts, folder):
        samples = attempt(name, lambda: bench.measure(fake_hosts, folder, rounds), missing)
    if samples is None:
        sys.exit(1)
    text = (f"Machine: {report.machine()}. {rounds} round(s); {bench.caption}\n\n"
            + bench.table(samples) + "\n")
    publish(out, name, text, {bench.key: samples}, into_docs)


def measure_all(fake_hosts, folder, plan, rounds, missing):
    """Every measurement of a full run: ``(layouts, {what: samples})``, where one that cannot
    be made is None and named in *missing* (`attempt`), and the others are still made."""
    master, engine_hosts = fake_hosts.hosts[0], fake_hosts.hosts[1:]
    layouts = [methods.Layout(master, tuple(engine_hosts[:n]), per_host)
               for per_host in plan["per_host"] for n in plan["hosts"]]
    say(f"{len(fake_hosts.hosts)} fake hosts up; {rounds} round(s)")

    def healed():
        samples = both_healings(fake_hosts, folder, plan["healing"])
        say(f"self-healing: {samples}")
        return samples
    steps = {"fab -l": lambda: [methods.fab_list() for _ in range(max(3, rounds))],
             "engines up and down": lambda: startup(fake_hosts, folder, layouts, rounds),
             "control path": lambda: control_path(fake_hosts, folder, plan["control"], rounds),
             "peak threads": lambda: threads(fake_hosts, folder, plan["threads"]),
             "self-healing": healed,
             "threads per engine": lambda: blas.measure(fake_hosts, folder, rounds, say),
             "dashboard": lambda: dashboard.measure(fake_hosts, folder, rounds)}
    return layouts, {what: attempt(what, step, missing) for what, step in steps.items()}


def full_text(found, missing, layouts, plan, rounds):
    """The full run's Markdown: each measurement's tables, or a line that says why it is missing."""
    def part(what, render):
        return f"Not measured: {what} ({missing[what]})." if what in missing else render(found[what])
    lacking = [what for what in ("engines up and down", "control path", "fab -l") if what in missing]
    sizes = plan["control"]
    return "\n\n".join([
        f"Machine: {report.machine()}. {rounds} round(s); median (min-max).",
        part("engines up and down", lambda times: "Engines up (until every engine registered) and"
             " down (until no process is left):\n\n" + report.startup_table(times, layouts)),
        part("control path", lambda control: "Control path (fake hosts, no engines running), and"
             " its floor: OpenSSH's `ssh HOST true` on as many hosts, 32 at a time:\n\n"
             + report.control_table(control, sizes) + "\n\nThe control path as a multiple of its"
             " floor:\n\n" + report.floor_table(control, sizes)),
        part("peak threads", report.threads_line),
        part("self-healing", report.healing_table),
        part("threads per engine", lambda products: f"Threads per engine: {blas.PRODUCTS} products"
             f" of {blas.SIZE}x{blas.SIZE} matrices on each engine of one host, all engines at"
             " once:\n\n" + blas.blas_table(products)),
        part("dashboard", lambda looked: "What the dashboard costs the controller:\n\n"
             + dashboard.dashboard_table(looked)),
        part("fab -l", lambda fab_list: f"`fab -l`: {report.cell(fab_list)}"),
        f"Goals not checked: {', '.join(lacking)} not measured." if lacking else report.goals(
            found["engines up and down"], layouts, found["control path"], sizes, found["fab -l"]),
    ]) + "\n"


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
    parser.add_argument("--slurm", action="store_true",
                        help="engines in a Slurm allocation, against ipyparallel's Slurm launcher, alone")
    parser.add_argument("--throughput", action="store_true",
                        help="the project's controller beside ipyparallel's, short tasks, alone")
    parser.add_argument("--rounds", type=int, help="rounds of every measure (default 3, quick 1)")
    parser.add_argument("--out", help="folder for results.md and results.png "
                                      "(default bench/results, or a temporary one with --quick)")
    args = parser.parse_args()
    plan = SMALLEST if args.smallest else QUICK if args.quick else FULL
    args.quick = args.quick or args.smallest  # neither writes into the documentation
    into_docs = not args.out and not args.quick
    rounds = args.rounds or plan["rounds"]
    out = Path(args.out or (tempfile.mkdtemp(prefix="ippbench-") if args.quick
                            else methods.PROJECT / "bench" / "results"))
    if args.throughput:  # local engines: no fake hosts
        samples = throughput.measure(args.rounds or 5, say)
        text = (f"Machine: {report.machine()}. {args.rounds or 5} rounds; medians.\n\n"
                + throughput.throughput_table(samples) + "\n")
        return publish(out, "throughput", text, {"rounds": samples}, into_docs)
    reason = why_not_available()
    if reason:
        sys.exit(f"error: {reason}")
    if methods.cluster_processes():
        sys.exit("error: cluster processes already run on this machine; stop them first, "
                 "they would be counted as left behind:\n" + "\n".join(methods.cluster_processes()))

    for name, bench in ALONE.items():
        if getattr(args, name):
            run_alone(name, out, args.rounds or bench.rounds or plan["rounds"], into_docs)
            return
    count = max(max(plan["control"]), max(plan["hosts"]) + 1, min(plan["threads"]))
    missing = {}
    with fake_cluster(count) as (fake_hosts, folder):
        layouts, found = measure_all(fake_hosts, folder, plan, rounds, missing)
    text = full_text(found, missing, layouts, plan, rounds)
    times = found["engines up and down"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({  # every sample, to plot or compare again
        "machine": report.machine(), "fab -l": found["fab -l"],
        "startup": [[*key, samples] for key, samples in (times or {}).items()],
        "control": [[*key, samples] for key, samples in (found["control path"] or {}).items()],
        "threads": found["peak threads"], "healing": found["self-healing"],
        "blas seconds": found["threads per engine"], "dashboard": found["dashboard"],
        **({"not measured": missing} if missing else {})}, indent=1))
    if times:
        report.plot(times, layouts, out / "results.png")
    if into_docs and not missing:  # the page keeps its whole tables until a whole run
        write_docs(text)
        if times:
            shutil.copyfile(out / "results.png", DOCS / "img" / "bench-results.png")
    print(text)
    say(f"written: {out / 'results.md'}" + (f", {out / 'results.png'}" if times else ""))
    if missing:
        sys.exit(f"error: not measured: {', '.join(missing)}; the others are in {out / 'results.md'}")


if __name__ == "__main__":
    main()
