"""
Self-healing, measured: seconds from ``kill -9`` of an engine to its successor registered,
the memory guard's reaction from crossing MEMORY_LIMIT to the engine's end, and from
``kill -9`` of every controller process to the first task answered through a client made
before, next to the recovery without the controller's nanny (``fab cluster.up``: a new
controller, every engine restarted, then a new client's first task).
"""

import os
import subprocess
import sys
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
        tries = 0
        while len(samples["memory"]) < rounds:
            mark = folder / "grow.times"
            code = (GROW + f"try:\n    c[c.ids[0]].apply_sync(grow, {str(mark)!r}, {LIMIT_MIB << 20})\n"
                    "except Exception as e:\n    print(repr(e)[:300])\nprint('null')\n")
            methods.ask_cluster(code)
            crossed, last = mark.read_text().split()
            if crossed != "None":  # else the engine ended between its step and its own look
                samples["memory"].append(float(last) - float(crossed))
            elif (tries := tries + 1) > rounds:
                raise methods.BenchError("the task never saw its engine pass MEMORY_LIMIT")
            while len(methods.ask_cluster(PIDS) or []) < 2:  # back to full size before the next round
                time.sleep(0.1)
    finally:
        methods.fab(inventory, key, "cluster.down")
    return samples


#: A client that lives through the controller's crash: for each line on its stdin, a
#: load-balanced task through it, then the time (time.time()) one was answered and how
#: many were not within 5 s (a task sent in the instant the controller dies is lost).
OLD_CLIENT = f"""
import os, sys, time
import ipyparallel as ipp
c = ipp.Client(profile={methods.NAME!r}, timeout=20)
c.wait_for_engines(2, timeout=60)
view = c.load_balanced_view()
print("ready", flush=True)
for line in sys.stdin:
    lost = 0
    while True:
        try:
            view.apply_async(os.getpid).get(timeout=5)
            break
        except ipp.TimeoutError:
            lost += 1
    print(time.time(), lost, flush=True)
"""


def measure_controller(fake_hosts, folder, rounds):
    """``{"controller": [seconds, ...], "controller_up": [seconds, ...], "controller_lost":
    [tasks, ...]}``: a new cluster each round (a crash is the first of the nanny's window:
    no back-off is measured)."""
    master, host = fake_hosts.hosts[0], fake_hosts.hosts[1]
    inventory = methods.write_inventory(folder / "controller", f"[master]\n{master.address}\n"
                                        f"[engines]\n{host.address} engines=2\n", fake_hosts)
    key = fake_hosts.client_key
    pattern = f"/{methods.NAME}/{master.name}/ipp_remote master[.]controller"
    env = {k: v for k, v in os.environ.items() if k != "IPYTHONDIR"}  # the hosts' profile
    samples = {"controller": [], "controller_up": [], "controller_lost": []}
    try:
        for _ in range(rounds):
            methods.fab_ok(inventory, key, "cluster.up")
            client = subprocess.Popen([sys.executable, "-c", OLD_CLIENT], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
            try:
                if client.stdout.readline().strip() != "ready":
                    raise methods.BenchError("the client made before the crash did not connect")
                killed = time.time()
                master.run(f"pkill -KILL -f '^[^ ]*python[0-9.]* [^ ]*{pattern} '")
                client.stdin.write("go\n")
                client.stdin.flush()
                answered, lost = client.stdout.readline().split()
                samples["controller"].append(float(answered) - killed)
                samples["controller_lost"].append(int(lost))
            finally:
                client.kill()
                client.wait()
            killed = time.time()  # the controller and its nanny: nothing starts it again
            master.run(f"pkill -KILL -f '/{methods.NAME}/{master.name}/(ipp_remote shared[.]nanny controller|"
                       "ipp_remote master[.]controller)'")
            methods.fab_ok(inventory, key, "cluster.up")
            while not methods.ask_cluster(PIDS):
                time.sleep(0.05)
            samples["controller_up"].append(time.time() - killed)
            methods.fab_ok(inventory, key, "cluster.down")
    finally:
        methods.fab(inventory, key, "cluster.down")
    return samples
