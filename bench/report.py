"""
What the benchmark prints: Markdown tables of medians (min-max) and ratios,
the goals of the speed issue checked against this run, and a PNG plot.
"""

import os
import platform
import statistics

#: The control path's floor: the logins alone.
FLOOR = "ssh HOST true (floor)"
CONTROL_TASKS = ("cluster.status", "cluster.run true")


def machine():
    """One line that says what machine the numbers come from."""
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.machine())
    memory = next(int(line.split()[1]) for line in open("/proc/meminfo")
                  if line.startswith("MemTotal"))
    return (f"{model}, {os.cpu_count()} cores, {memory / 2**20:.1f} GiB, Linux "
            f"{platform.release()}, Python {platform.python_version()}")


def median(samples):
    return statistics.median(samples)


def cell(samples):
    """``7.8 s (7.6-8.1)``: median, then min-max when there are several samples."""
    if len(samples) == 1:
        return f"{samples[0]:.2f} s"
    return f"{median(samples):.2f} s ({min(samples):.2f}-{max(samples):.2f})"


def ratio(numerator, denominator):
    return median(numerator) / median(denominator)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def startup_table(times, layouts):
    """times[(method, "up"|"down", layout label)] -> seconds; a row per layout."""
    header = ["hosts x engines", "fab cluster.up", "ipcluster-ssh up", "floor (local)",
              "up / ipcluster-ssh", "up / floor", "fab cluster.down", "ipcluster-ssh stop",
              "down / ipcluster-ssh"]
    rows = []
    for layout in layouts:
        t = {(m, step): times[(m, step, layout.label)] for m in ("fab", "ipcluster-ssh", "floor")
             for step in ("up", "down")}
        rows.append([layout.label, cell(t["fab", "up"]), cell(t["ipcluster-ssh", "up"]),
                     cell(t["floor", "up"]),
                     f"{ratio(t['fab', 'up'], t['ipcluster-ssh', 'up']):.2f}",
                     f"{ratio(t['fab', 'up'], t['floor', 'up']):.2f}",
                     cell(t["fab", "down"]), cell(t["ipcluster-ssh", "down"]),
                     f"{ratio(t['fab', 'down'], t['ipcluster-ssh', 'down']):.2f}"])
    return table(header, rows)


def healing_table(samples):
    """The self-healing measures (`bench.healing`): a row each, median (min-max) of the samples."""
    rows = [["`kill -9` of an engine -> its successor registered", cell(samples["restart"])],
            ["memory guard: MEMORY_LIMIT crossed -> the engine ended", cell(samples["memory"])]]
    if samples.get("controller"):
        rows += [["`kill -9` of the controller -> first task answered through a client made"
                  " before", cell(samples["controller"])],
                 ["without its nanny: `kill -9` -> `fab cluster.up` (engines restarted) -> first"
                  " task answered", cell(samples["controller_up"])],
                 ["nanny / without", f"{ratio(samples['controller'], samples['controller_up']):.2f}"],
                 ["tasks lost: sent through that client in the instant of the kill",
                  f"{sum(samples['controller_lost'])} in {len(samples['controller_lost'])} rounds"]]
    return table(["self-healing (1 host, 2 engines)", "seconds"], rows)


def control_table(control, sizes):
    """control[(task label, hosts)] -> seconds; a row per task, a column per size."""
    tasks = sorted({name for name, _ in control}, key=list(dict.fromkeys(n for n, _ in control)).index)
    header = ["task"] + [f"{n} hosts" for n in sizes] + [f"{sizes[-1]} / {sizes[0]}"]
    rows = [[name] + [cell(control[name, n]) for n in sizes]
            + [f"{ratio(control[name, sizes[-1]], control[name, sizes[0]]):.2f}"] for name in tasks]
    return table(header, rows)


def floor_table(control, sizes):
    """The control-path tasks on each number of hosts, as a multiple of the floor there."""
    rows = [[name] + [f"{ratio(control[name, n], control[FLOOR, n]):.2f}" for n in sizes]
            for name in CONTROL_TASKS]
    return table(["task / floor"] + [f"{n} hosts" for n in sizes], rows)


def threads_line(peaks):
    """The peak thread counts of ``fab`` per number of hosts, in one sentence."""
    counts = ", ".join(f"{peak} at {hosts} hosts" for hosts, peak in peaks.items())
    return (f"Peak threads of `fab cluster.run true` (PARALLEL=32; past the fake hosts, silent "
            f"ones that accept TCP and never answer): {counts}.")


def goals(times, layouts, control, sizes, fab_list):
    """The speed issue's goals, each with the worst value of this run and whether it holds."""
    def worst(numerator, denominator, step_n="up", step_d="up"):
        return max(ratio(times[(numerator, step_n, l.label)], times[(denominator, step_d, l.label)])
                   for l in layouts)
    checks = [
        ("cluster.up <= 0.6 x ipcluster-ssh", worst("fab", "ipcluster-ssh"), 0.6),
        ("cluster.up <= 1.25 x floor", worst("fab", "floor"), 1.25),
        ("cluster.down <= 0.5 x ipcluster-ssh stop",
         worst("fab", "ipcluster-ssh", "down", "down"), 0.5),
        *((f"{name} on {sizes[-1]} hosts <= 1.1 x its floor",
           ratio(control[name, sizes[-1]], control[FLOOR, sizes[-1]]), 1.1) for name in CONTROL_TASKS),
        ("fab -l < 0.5 s", median(fab_list), 0.5),
    ]
    rows = [[goal, f"{value:.2f}", "yes" if value <= limit else "NO"]
            for goal, value, limit in checks]
    return table(["goal", "worst in this run", "holds"], rows)


def plot(times, layouts, path):
    """Time to all engines registered against engine hosts, a panel per engines-per-host."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_host = sorted({l.per_host for l in layouts})
    figure, axes = plt.subplots(1, len(per_host), figsize=(5 * len(per_host), 3.8), squeeze=False)
    for axis, engines in zip(axes[0], per_host):
        chosen = [l for l in layouts if l.per_host == engines]
        hosts = [len(l.engine_hosts) for l in chosen]
        for method, label in (("fab", "fab cluster.up"), ("ipcluster-ssh", "ipcluster SSH launcher"),
                              ("floor", "floor: local, no SSH")):
            axis.plot(hosts, [median(times[(method, "up", l.label)]) for l in chosen], "o-",
                      label=label)
        axis.set(title=f"{engines} engine(s) per host", xlabel="engine hosts",
                 ylabel="seconds until all engines registered", xscale="log", ylim=(0, None))
        axis.set_xticks(hosts, [str(h) for h in hosts])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
