"""
Threads per engine, measured: NumPy matrix products on every engine of a host with as many
engines as cores, all at once, the way a map keeps a cluster busy. Three runs:

- ``fab cluster.up`` as it is: each engine's BLAS on cores / engines threads;
- ``fab cluster.up`` with ``threads=CORES``: each BLAS on every core, as without settings;
- ipyparallel's own ``Cluster(n=CORES)`` here: no thread settings at all.

Each engine reports how long its products took; the table gives products per second per
engine (median over engines and rounds) and the ratio to ipyparallel's.
"""

import os

from . import methods
from .report import median, table

SIZE, PRODUCTS = 800, 40

#: The work: PRODUCTS products of SIZE x SIZE matrices, once to warm up (BLAS starts its
#: threads), then timed. Returns the timed seconds.
WORK = f"""
def products():
    import time, numpy
    a = numpy.random.default_rng(0).random(({SIZE}, {SIZE}))
    a @ a
    began = time.perf_counter()
    for _ in range({PRODUCTS}):
        a @ a
    return time.perf_counter() - began
"""

#: What the user may have set: ipyparallel's engines would inherit it, and this measures none.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def fab_run(fake_hosts, folder, threads=None):
    """Seconds of each engine's products, on a host of `os.cpu_count` engines (host 2) under
    ``fab cluster.up`` (with ``threads=`` *threads*, if given)."""
    master, host = fake_hosts.hosts[0], fake_hosts.hosts[1]
    extra = f" threads={threads}" if threads else ""
    text = f"[master]\n{master.address}\n\n[engines]\n{host.address} engines={os.cpu_count()}{extra}\n"
    inventory = methods.write_inventory(folder / "blas", text, fake_hosts)
    methods.fab_ok(inventory, fake_hosts.client_key, "cluster.up")
    try:
        return methods.ask_cluster(WORK + "print(json.dumps(c[:].apply_sync(products)))")
    finally:
        methods.fab_ok(inventory, fake_hosts.client_key, "cluster.down")
        methods.wait_until_clean("fab cluster.down")


def ipyparallel_run():
    """Seconds of each engine's products under ipyparallel's ``Cluster(n=cores)`` here."""
    import ipyparallel as ipp

    saved = {name: os.environ.pop(name) for name in THREAD_VARIABLES if name in os.environ}
    cluster = ipp.Cluster(n=os.cpu_count(), profile=f"{methods.NAME}-blas")
    try:
        client = cluster.start_and_connect_sync()
        client.wait_for_engines(os.cpu_count(), timeout=300)
        namespace = {}
        exec(WORK, namespace)
        seconds = client[:].apply_sync(namespace["products"])
        client.close()
        return seconds
    finally:
        cluster.stop_cluster_sync()
        os.environ.update(saved)
        methods.wait_until_clean("ipyparallel's cluster stop")


RUNS = ("fab cluster.up (cores / engines threads each)", "fab cluster.up, threads=CORES",
        "ipyparallel Cluster(n=CORES)")


def measure(fake_hosts, folder, rounds, say):
    """``{run label: [seconds of one engine's products, ...]}`` over *rounds* rounds."""
    runs = dict(zip(RUNS, (lambda: fab_run(fake_hosts, folder),
                           lambda: fab_run(fake_hosts, folder, threads=os.cpu_count()),
                           ipyparallel_run)))
    samples = {label: [] for label in runs}
    for round_ in range(rounds):
        for label, run in runs.items():
            seconds = run()
            samples[label] += seconds
            say(f"round {round_ + 1}/{rounds}  {label}: " + ", ".join(f"{s:.2f}" for s in seconds)
                + " s per engine")
    return samples


def blas_table(samples):
    """A row per run: products per second per engine, median (min-max), and / ipyparallel's."""
    cores = os.cpu_count()
    threads = {RUNS[0]: "1", RUNS[1]: str(cores), RUNS[2]: f"{cores} (BLAS default)"}
    rates = {label: [PRODUCTS / s for s in seconds] for label, seconds in samples.items()}
    rows = []
    for label, each in rates.items():
        rows.append([label.replace("CORES", str(cores)), str(cores), threads[label],
                     f"{median(each):.1f} ({min(each):.1f}-{max(each):.1f})",
                     f"{median(each) / median(rates[RUNS[2]]):.2f}"])
    return table(["run", "engines", "BLAS threads per engine",
                  f"{SIZE}x{SIZE} products/s per engine", "/ ipyparallel"], rows)
