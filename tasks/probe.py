"""
The small Python program that runs on the master to ask the controller about engines.

It runs with the cluster's own Python (``CLUSTER_ENV/bin/python``) so that it
uses ipyparallel's `Client` where the controller and its client connection file
are; the machine running ``fab`` needs no route to the controller's ports. It is
passed on the command line with its arguments as JSON (no secret is among them:
it reads the Jupyter token from its 0600 file). While it waits for engines, it
prints ``progress={host: count}`` each time the counts change; at the end it
prints one line, ``probe={...}``, with:

- ``controller``: true when a client could connect;
- ``engines``: registered engines per host label (the part of each engine's
  uuid before the first ``/``, see `tasks.commands.start_engines`);
- ``jupyter``: true when Jupyter's ``/api/status`` answers with the token
  (checked only when asked);
- ``error``: why the controller could not be asked, if it could not.
"""

PROBE_SOURCE = r'''
import json, os, sys, time, urllib.request
args = json.loads(sys.argv[1])
report = {"controller": False, "engines": {}, "jupyter": False, "error": ""}
deadline = time.monotonic() + args["wait"]

def jupyter_answers():
    try:
        with open(sys.argv[2]) as token_file:
            token = token_file.read().strip()
        request = urllib.request.Request(
            "http://127.0.0.1:%d/api/status" % args["port"],
            headers={"Authorization": "token " + token})
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except Exception:
        return False

def per_host(client):
    client.ids  # flushes registration notifications
    counts = {}
    for uuid in client._engines.values():
        label = uuid.split("/")[0]
        counts[label] = counts.get(label, 0) + 1
    return counts

try:
    import ipyparallel as ipp
    from IPython.core.profiledir import ProfileDir
    from IPython.paths import get_ipython_dir
    profile = ProfileDir.find_profile_dir_by_name(get_ipython_dir(), args["profile"])
    if not os.path.exists(os.path.join(profile.security_dir, "ipcontroller-client.json")):
        raise RuntimeError("no client connection file: the controller is not running")
    client = ipp.Client(profile=args["profile"], timeout=3)
    report["controller"] = True
    if args["shutdown"]:
        targets = [i for i, uuid in client._engines.items()
                   if uuid.split("/")[0] in args["shutdown"]]
        if targets:
            client.shutdown(targets=targets, block=False)
        end = time.monotonic() + 5
        while time.monotonic() < end and set(targets) & set(client.ids):
            time.sleep(0.05)
    shown = None
    while True:
        report["engines"] = per_host(client)
        if args["expected"] and report["engines"] != shown:
            print("progress=" + json.dumps(report["engines"]), flush=True)
            shown = dict(report["engines"])
        done = all(report["engines"].get(h, 0) == n for h, n in args["expected"].items())
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    client.close()
except Exception as error:
    report["error"] = "%s: %s" % (type(error).__name__, error)
while args["jupyter"]:
    report["jupyter"] = jupyter_answers()
    if report["jupyter"] or time.monotonic() >= deadline:
        break
    time.sleep(0.1)
print("probe=" + json.dumps(report), flush=True)
'''
