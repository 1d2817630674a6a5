"""
The scale benchmark (``python -m bench --scale``): 200 engines (4 hosts x 50) and 400 (4 x
100) brought up by ``fab cluster.up``, 200 by ipyparallel's own ``Cluster(n=200)`` on this
machine, and 120 engines (4 x 30) by ``fab cluster.up`` on a master whose logins may open
256 files (their soft limit). For each: engines registered of those expected, seconds until
the last one registered, and per engine, once all registered: its memory (PSS: shared pages
split among the processes that share them; every process of the engine counted: for
``cluster.up`` the host's supervisor, its host nanny and the engines; for ipyparallel,
each engine and its KernelNanny) and the CPU its processes used to start it. Then the
files a host's Python reads to start 4 and 16 engines (`bench.files_read`), forked by the
supervisor and as a process each.

ipyparallel's SSH launcher is left out: it starts one engine per SSH command, one after
the other (57 s for 16 engines in the main benchmark), so 200 would take about ten minutes.
"""

import time

import psutil

from . import files_read, methods

#: How long ipyparallel's own cluster is waited for: in all, and without a new engine.
LOCAL_LIMIT, LOCAL_STALL = 600, 60


def _tagged(tag):
    """This machine's processes whose environment carries IPP_CLUSTER_TAG=*tag*."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("IPP_CLUSTER_TAG") == tag:
                found.append(process)
        except psutil.Error:
            pass
    return found


def _local_engines():
    """The engines ipyparallel's local launcher started, and everything they started."""
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or ())
        if "ipyparallel.engine" in line or "ipengine" in line:
            try:
                for member in (process, *process.children(recursive=True)):
                    found[member.pid] = member
            except psutil.Error:
                pass
    return list(found.values())


def cost(processes):
    """(PSS in bytes, CPU seconds: user and system, with their reaped children's) of
    *processes* together; those that are gone count nothing."""
    pss = cpu = 0.0
    for process in processes:
        try:
            pss += process.memory_full_info().pss
            times = process.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return pss, cpu


def fab_run(fake_hosts, folder, hosts, per_host, soft=None):
    """``fab cluster.up`` of *hosts* x *per_host* engines (the master's soft limit of open
    files *soft*), then ``cluster.down``; the run's row."""
    master, engine_hosts = fake_hosts.hosts[0], fake_hosts.hosts[1:hosts + 1]
    text = f"[master]\n{master.address}\n\n[engines]\n" + "".join(
        f"{host.address} engines={per_host}\n" for host in engine_hosts)
    inventory = methods.write_inventory(folder / f"scale-{hosts}x{per_host}", text, fake_hosts,
                                        ENGINE_TIMEOUT=900)
    key = fake_hosts.client_key
    if soft:
        with master.soft_open_files(soft):
            seconds, result = methods.timed(lambda: methods.fab(inventory, key, "cluster.up"))
    else:
        seconds, result = methods.timed(lambda: methods.fab(inventory, key, "cluster.up"))
    engines = hosts * per_host
    pss, cpu = cost(_tagged(f"{methods.NAME}/engine"))
    row = {"registered": methods.ask_cluster("print(len(c.ids))", connect=60),
           "expected": engines, "seconds": seconds, "ok": result.returncode == 0,
           "memory": pss / engines, "cpu": cpu / engines}
    methods.fab_ok(inventory, key, "cluster.down")
    methods.wait_until_clean("fab cluster.down")
    return row


def local_run(engines):
    """ipyparallel's ``Cluster(n=engines)`` here, waited for until every engine registered
    or none came for `LOCAL_STALL` s; the run's row."""
    import ipyparallel as ipp

    cluster = ipp.Cluster(n=engines, profile=f"{methods.NAME}-local")
    began = time.perf_counter()
    cluster.start_cluster_sync()
    client = cluster.connect_client_sync()
    count, last = 0, time.perf_counter()
    try:
        while count < engines and time.perf_counter() - began < LOCAL_LIMIT:
            if len(client.ids) != count:
                count, last = len(client.ids), time.perf_counter()
            elif time.perf_counter() - last > LOCAL_STALL:
                break
            time.sleep(0.5)
        pss, cpu = cost(_local_engines())
    finally:
        client.close()
        cluster.stop_cluster_sync()
        methods.wait_until_clean("ipyparallel's cluster stop")
    return {"registered": count, "expected": engines, "seconds": last - began,
            "ok": count == engines, "memory": pss / engines, "cpu": cpu / engines}


def measure(fake_hosts, folder, rounds, say):
    """``{run label: [row, ...]}``, *rounds* times each run; *say* reports each row."""
    runs = {"fab cluster.up, 4 x 50": lambda: fab_run(fake_hosts, folder, 4, 50),
            "ipyparallel Cluster(n=200), here": lambda: local_run(200),
            "fab cluster.up, 4 x 100": lambda: fab_run(fake_hosts, folder, 4, 100),
            "fab cluster.up, 4 x 30, master's soft limit 256 open files":
                lambda: fab_run(fake_hosts, folder, 4, 30, soft=256)}
    rows = {label: [] for label in runs}
    for round_ in range(rounds):
        for label, run in runs.items():
            row = run()
            rows[label].append(row)
            say(f"round {round_ + 1}/{rounds}  {label}: {row['registered']}/{row['expected']}"
                f" in {row['seconds']:.1f} s, {row['memory'] / 2**20:.0f} MiB and"
                f" {row['cpu']:.2f} CPU s per engine")
    return {"runs": rows, "files": files_read.measure(folder, say)}


def table(found):
    """The Markdown tables of what `measure` found."""
    lines = ["| run | registered / expected, each round | time to the last engine |"
             " memory (PSS) per engine | CPU to start one engine |", "|---|---|---|---|---|"]
    for label, samples in found["runs"].items():
        counts = ", ".join(f"{r['registered']}/{r['expected']}" for r in samples)
        seconds = sorted(r["seconds"] for r in samples)
        memory = sorted(r["memory"] for r in samples)
        cpu = sorted(r.get("cpu", 0.0) for r in samples)
        lines.append(f"| {label} | {counts} | {_median(seconds):.0f} s ({seconds[0]:.0f}-"
                     f"{seconds[-1]:.0f}) | {_median(memory) / 2**20:.0f} MiB | {_median(cpu):.2f} s |")
    return "\n".join(lines) + "\n\n" + files_read.table(found["files"])


def _median(values):
    return values[len(values) // 2]
