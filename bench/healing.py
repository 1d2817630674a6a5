"""
Self-healing engines, measured: seconds from ``kill -9`` of an engine to its successor
registered, and the memory guard's reaction from crossing MEMORY_LIMIT to the engine's end.
"""

import time

from . import methods

LIMIT_MIB = 200

#: A task that grows in 10 MiB steps, writing the time its engine first passed the limit
#: and, at every step, the time it was last alive, into PATH (the hosts share the files;
#: each write whole, so a kill mid-write leaves the last one).
GROW = """
def grow(path, limit):
    import os, time
    def rss(pid):
        try:
            with open(f'/proc/{pid}/status') as status:
                return next(int(l.split()[1]) * 1024 for l in status if l.startswith('VmRSS:'))
        except (OSError, StopIteration):
            return 0
    def children():  # as the nanny counts: the engine with its children (ipyparallel's own nanny)
        found = []
        for entry in os.listdir('/proc'):
            try:
                with open(f'/proc/{entry}/stat') as stat:
                    if int(stat.read().rsplit(')', 1)[1].split()[1]) == os.getpid():
                        found.append(entry)
            except (OSError, ValueError):
                pass
        return found
    held, crossed, others = [], None, children()
    while True:
        held.append(b'x' * (10 << 20))  # written, so resident
        now = time.time()
        if crossed is None and rss(os.getpid()) + sum(rss(c) for c in others) > limit:
            crossed = now
        with open(path + '.new', 'w') as out:  # then renamed: the engine can die mid-write
            out.write(f'{crossed} {now}')
        os.replace(path + '.new', path)
        time.sleep(0.005)
"""


#: The engines' pids, or null while one of them is dead but still registered: the task
#: sent to it then fails (EngineError), which is a look too early, not a failure.
PIDS = ("def pid():\n    import os\n    return os.getpid()\n"
        "try:\n    print(json.dumps(sorted(c[:].apply_async(pid).get_dict(timeout=30).values())))\n"
        "except Exception:\n    print('null')\n")


def measure(fake_hosts, folder, rounds):
    """``{"restart": [seconds, ...], "memory": [seconds, ...]}`` on one engine host of two engines."""
    master, host = fake_hosts.hosts[0], fake_hosts.hosts[1]
    inventory = methods.write_inventory(folder / "healing", f"[master]\n{master.address}\n"
                                        f"[engines]\n{host.address} engines=2\n", fake_hosts,
                                        MEMORY_LIMIT=f"{LIMIT_MIB}M")
    key = fake_hosts.client_key
    methods.fab_ok(inventory, key, "cluster.up")
    samples = {"restart": [], "memory": []}
    try:
        for _ in range(rounds):
            while not (before := methods.ask_cluster(PIDS)):
                time.sleep(0.1)
            killed = time.perf_counter()
            host.run(f"kill -9 {before[0]}")
            while True:
                now = methods.ask_cluster(PIDS) or []
                if len(now) == 2 and before[0] not in now:
                    samples["restart"].append(time.perf_counter() - killed)
                    break
                time.sleep(0.05)
        for _ in range(rounds):
            mark = folder / "grow.times"
            code = (GROW + f"try:\n    c[c.ids[0]].apply_sync(grow, {str(mark)!r}, {LIMIT_MIB << 20})\n"
                    "except Exception as e:\n    print(repr(e)[:300])\nprint('null')\n")
            methods.ask_cluster(code)
            crossed, last = (float(t) for t in mark.read_text().split())
            samples["memory"].append(last - crossed)
            while len(methods.ask_cluster(PIDS) or []) < 2:  # back to full size before the next round
                time.sleep(0.1)
    finally:
        methods.fab(inventory, key, "cluster.down")
    return samples
