"""
End to end: the dashboard in the master's Jupyter, and ``--json`` for programs. Host 1
is the master; hosts 2 and 3 run two engines each.
"""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import FAB, PROJECT, engines_by_id, fab_for, on, three_host_inventory, with_client

NAME = PROFILE = "dash"
PORT = 18970
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT / "test-artifacts"
HOSTS = ("127.0.2.2", "127.0.2.3")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer of its own here


def get(path, token=None):
    """``(status, body)`` of a GET on the master's Jupyter (its loopback is this machine's)."""
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}",
                                     headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.fixture(scope="module")
def fab_here(fake_hosts, tmp_path_factory):
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT,
                                     engine_hosts=(2, 3))
    with fab_for(fake_hosts, inventory) as run:
        yield run


@pytest.fixture
def cluster(fab_here):
    """The cluster up with all its engines, whatever a test before did to it; its token."""
    up = fab_here("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    fab_here.up = up
    fab_here.token = re.search(r"^Dashboard: http://localhost:\d+/ipp-dashboard/\?token=(\w+)$",
                               up.stdout, re.MULTILINE)[1]
    return fab_here


def state(token, until=lambda s: True, timeout=30):
    """The dashboard's data, once *until* holds for it (its tries are 1 s apart)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get("/ipp-dashboard/state", token)
        found = json.loads(body) if status == 200 else None
        if found and until(found):
            return found
        assert time.monotonic() < deadline, (status, body[-2000:])
        time.sleep(1)


def host_row(found, name):
    return next(host for host in found["hosts"] if host["host"] == name)


def test_up_prints_the_dashboard_and_master_url_too(cluster):
    assert f"Dashboard: http://localhost:{PORT}/ipp-dashboard/?token={cluster.token}" in cluster.up.stdout
    url = cluster("master.url").stdout.splitlines()
    assert url == [f"Dashboard: http://localhost:{PORT}/ipp-dashboard/?token={cluster.token}",
                   f"http://localhost:{PORT}/?token={cluster.token}"]


def test_without_the_token_the_page_and_its_data_give_nothing(cluster):
    page, body = get("/ipp-dashboard/")
    assert page in (302, 403) and "127.0.2.2" not in body
    data, body = get("/ipp-dashboard/state")
    assert data == 403 and "127.0.2.2" not in body
    assert get("/ipp-dashboard/state", "not-the-token")[0] == 403
    assert get("/ipp-dashboard/", cluster.token)[0] == 200


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_the_page_through_the_tunnel_shows_hosts_engines_and_40_tasks(cluster, fake_hosts):
    from playwright.sync_api import sync_playwright

    done = with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(40)))))",
                       PROFILE)
    assert done == 40
    env = dict(os.environ, CLUSTER_INVENTORY=str(cluster.inventory))
    tunnel = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.tunnel"],
                              cwd=PROJECT, env=env, stdout=subprocess.PIPE, text=True)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        assert tunnel.stdout.readline().startswith("Jupyter: ")
        url = re.fullmatch(r"Dashboard: (\S+)", tunnel.stdout.readline().strip())[1]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            try:
                for host in HOSTS:  # text, as a screen reader reads it
                    page.wait_for_selector(f'tr[data-host="{host}"]:has-text("2/2 registered")',
                                           timeout=60_000)
                page.wait_for_function(
                    "document.querySelectorAll('#stream rect').length >= 40", timeout=60_000)
                completed = int(page.inner_text('[data-total="completed"] b'))
                summary = page.text_content("#stream-summary")
                engines = page.locator(".engine").count()
            finally:
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)
    assert completed >= 40 and engines == 4
    assert re.fullmatch(r"(\d+) tasks on 4 engines in the last 5 minutes", summary)


def test_the_data_names_each_host_and_costs_the_controller_little(cluster):
    found = state(cluster.token, lambda s: all(host_row(s, h)["registered"] == 2 for h in HOSTS))
    for name in HOSTS:
        row = host_row(found, name)
        assert (row["expected"], row["registered"], row["threads"]) == (2, 2, 1)
        assert sorted(e["number"] for e in row["engines"]) == ["1", "2"]
    assert found["error"] is None and found["cost"]["requests"] == 3
    began = time.time()  # the hub's clock too: the master is this machine
    assert with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(7)))))",
                       PROFILE) == 7

    def new_tasks(found):
        return len([task for task in found["tasks"] if task["started"] >= began])
    seen = state(cluster.token, lambda s: new_tasks(s) == 7)
    # Once the tasks are older than the overlap of two reads, a read asks the hub for no
    # old record again (the hub deep-copies each one it sends), and the tasks stay shown.
    later = state(cluster.token, lambda s: s["time"] > seen["time"] + 5 and s["cost"]["records"] == 0)
    assert later["cost"]["requests"] == 3 and new_tasks(later) == 7
    print(f"dashboard state: {later['cost']['requests']} hub requests in {later['cost']['seconds']} s")


def test_an_engine_killed_shows_as_restarted(cluster, fake_hosts):
    state(cluster.token, lambda s: host_row(s, "127.0.2.2")["registered"] == 2)
    pid = sorted(v[1] for v in on(engines_by_id(PROFILE), "host2").values())[0]
    fake_hosts.hosts[1].run(f"kill -9 {pid}")
    found = state(cluster.token, lambda s: any(e["restarts"] for e in host_row(s, "127.0.2.2")["engines"])
                  and host_row(s, "127.0.2.2")["registered"] == 2, timeout=90)
    assert sum(e["restarts"] for e in host_row(found, "127.0.2.2")["engines"]) == 1


def test_the_dashboard_lives_through_a_controller_restart(cluster, fake_hosts):
    master = fake_hosts.hosts[0]
    pids = master.run(f"pgrep -f '^[^ ]*python[0-9.]* [^ ]*/{NAME}/host1/controller[.]py ' || true")
    master.run(f"kill -9 {' '.join(pids.split())} 2>/dev/null || true")  # one may end meanwhile
    found = state(cluster.token, lambda s: s["controller"]["restarts"] >= 1 and s["error"] is None
                  and all(host_row(s, h)["registered"] == 2 for h in HOSTS))
    assert found["controller"]["last_restart"]
    result, master = _json(cluster, "master.status")  # the same count, read by host_status.sh
    assert (master["hosts"][0]["controller_restarts"], master["hosts"][0]["controller_last_restart"]) == (
        found["controller"]["restarts"], found["controller"]["last_restart"])


def _json(cluster, *task):
    result = cluster(*task, "--json")
    return result, json.loads(result.stdout)  # the whole of stdout: one document


def test_json_of_a_healthy_cluster_says_what_the_tables_say(cluster):
    result, status = _json(cluster, "cluster.status")
    table = cluster("cluster.status")
    assert result.returncode == table.returncode == 0
    assert status["ok"] and not status["stopped"] and status["cluster"] == NAME
    rows = {host["host"]: host for host in status["hosts"]}
    assert rows["127.0.2.1"]["roles"] == ["master"] and rows["127.0.2.1"]["problems"] == []
    for name in HOSTS:
        line = next(line for line in table.stdout.splitlines() if line.startswith(f"│ {name} "))
        engines = line.split("│")[5].strip()  # the table's engines cell
        assert f"{rows[name]['registered']}/{rows[name]['expected']}" == engines == "2/2"
        assert rows[name]["reachable"] and rows[name]["sessions"] == [f"{NAME}-engines"]
        assert [(e["number"], e["state"]) for e in rows[name]["engines"]] == [(1, "running"), (2, "running")]
        assert all(e["pid"] and e["rss"] > 10 << 20 for e in rows[name]["engines"]), rows[name]  # a Python's
        resources = rows[name]["resources"]
        assert 0 < resources["memory_used"] < resources["memory_total"] and resources["cores"] >= 1
    result, engines = _json(cluster, "engines.status")
    assert result.returncode == 0 and [h["host"] for h in engines["hosts"]] == list(HOSTS)
    result, master = _json(cluster, "master.status")
    assert result.returncode == 0 and master["hosts"][0]["roles"] == ["master"]
    result, info = _json(cluster, "cluster.info")
    assert result.returncode == 0 and all(h["cores"] >= 1 and h["python"] for h in info["hosts"])
    result, check = _json(cluster, "cluster.check")
    assert result.returncode == 0 and all(h["ready"] for h in check["hosts"])
    assert "ready:" not in result.stdout  # nothing but the document on stdout


def test_json_of_a_broken_and_of_a_stopped_cluster_keeps_the_exit_codes(cluster):
    assert cluster("engines.stop", "--hosts=127.0.2.3").returncode == 0
    result, status = _json(cluster, "cluster.status")
    table = cluster("cluster.status")
    assert result.returncode == table.returncode == 1
    assert result.stderr == table.stderr  # the same error lines
    broken = {host["host"]: host["problems"] for host in status["hosts"] if host["problems"]}
    assert list(broken) == ["127.0.2.3"] and not status["ok"]
    assert f"error: 127.0.2.3: {'; '.join(broken['127.0.2.3'])}" in result.stderr
    assert cluster("cluster.down").returncode == 0
    result, status = _json(cluster, "cluster.status")
    assert result.returncode == 3 and status["stopped"] and "is stopped" in result.stderr
