"""
End to end: the dashboard in the master's Jupyter, read by headless Chromium and by
its data endpoint, and ``--json`` for programs. Host 1 is the master; hosts 2 and 3 run
two engines each (hosts 2 to 5, fifty each, in the slow test of 200 engines).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import tasks
from tests.conftest import FAB, PROJECT, engines_by_id, fab_for, on, three_host_inventory, with_client
from tests.conftest import fab as run_fab
from tests.waiting import wait_until

NAME = PROFILE = "dash"
PORT = 18970
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT / "test-artifacts"
HOSTS = ("127.0.2.2", "127.0.2.3")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")


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
    except (urllib.error.URLError, ConnectionError) as error:  # Jupyter restarting
        return 0, str(error)


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
    url = fab_here("master.url")  # the master's own URLs: its loopback is this machine's
    fab_here.token = re.search(r"^Dashboard: http://127\.0\.0\.1:\d+/ipp-dashboard/\?token=(\w+)$",
                               url.stdout, re.MULTILINE)[1]
    return fab_here


def state(token, until=lambda s: True, timeout=30):
    """The dashboard's data, once *until* holds for it (its tries are 1 s apart)."""
    def read():
        status, body = get("/ipp-dashboard/state", token)
        found = json.loads(body) if status == 200 else None
        assert found and until(found), (status, body[-2000:])  # what the failure says
        return found
    return wait_until(read, timeout, "the dashboard's data as the test needs it", interval=1)


def host_row(found, name):
    return next(host for host in found["hosts"] if host["host"] == name)


def test_up_names_the_tunnel_and_master_url_prints_the_dashboard_too(cluster):
    assert cluster.up.stdout.splitlines()[-1] == (f"Jupyter and the dashboard listen on 127.0.2.1's "
                                                  f"127.0.0.1:{PORT} only: fab cluster.tunnel brings "
                                                  "them here and prints their URLs")
    url = cluster("master.url").stdout.splitlines()
    assert url == [f"Dashboard: http://127.0.0.1:{PORT}/ipp-dashboard/?token={cluster.token}",
                   f"http://127.0.0.1:{PORT}/?token={cluster.token}"]


def test_without_the_token_the_page_and_its_data_give_nothing(cluster):
    page, body = get("/ipp-dashboard/")
    assert page in (302, 403) and "127.0.2.2" not in body
    data, body = get("/ipp-dashboard/state")
    assert data == 403 and "127.0.2.2" not in body
    assert get("/ipp-dashboard/state", "not-the-token")[0] == 403
    assert get("/ipp-dashboard/", cluster.token)[0] == 200


@needs_chromium
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
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            try:
                for host in HOSTS:  # text, as a screen reader reads it
                    page.wait_for_selector(f'tr[data-host="{host}"]:has-text("2/2 registered")',
                                           timeout=60_000)
                page.wait_for_function("parseInt(document.getElementById('stream-summary')"
                                       ".textContent) >= 40", timeout=60_000)
                completed = int(page.inner_text('[data-total="completed"] b'))
                summary = page.text_content("#stream-summary")
                engines = page.locator(".engine").count()
            finally:
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
        # each of the browser's connections had a relay on the master: each ends with it
        wait_until(lambda: not fake_hosts.hosts[0].run("pgrep -af '[l]oopback.py relay' || true"), 30,
                   "the master's relays to end with the browser's connections")
        assert tunnel.poll() is None  # the tunnel holds on
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)
    assert completed >= 40 and engines == 4
    assert re.fullmatch(r"(\d+) tasks ended and 0 running on 4 engines in the last 5 minutes", summary)


def ended(found):
    """The tasks ended in the stream's window, by the data."""
    return sum(bar[2] + bar[3] for row in found["stream"]["rows"] for bar in row["bars"])


def test_the_data_names_each_host_and_asks_the_hub_two_questions(cluster):
    found = state(cluster.token, lambda s: all(host_row(s, h)["registered"] == 2 for h in HOSTS))
    for name in HOSTS:
        row = host_row(found, name)
        assert (row["expected"], row["registered"], row["threads"]) == (2, 2, 1)
        assert sorted(e["number"] for e in row["engines"]) == ["1", "2"]
    assert found["error"] is None and found["cost"]["requests"] == 2
    before = ended(found)
    assert with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(7)))))",
                       PROFILE) == 7
    later = state(cluster.token, lambda s: ended(s) >= before + 7)
    assert later["cost"]["requests"] == 2 and later["totals"]["completed"] >= 7
    print(f"dashboard state: {later['cost']['requests']} hub requests in {later['cost']['seconds']} s")


def test_hosts_have_their_cpu_and_memory_and_an_engine_s_memory_rises_with_its_task(cluster, tmp_path):
    def sampled(s):
        return all(host_row(s, h)["resources"] and all(e["rss"] for e in host_row(s, h)["engines"])
                   for h in HOSTS)
    found = state(cluster.token, sampled, timeout=60)
    for name in HOSTS:
        row = host_row(found, name)
        res = row["resources"]
        assert 0 <= res["cpu_percent"] <= 100 and res["cores"] >= 1 and len(res["load"]) == 3
        assert 0 < res["memory_used"] < res["memory_total"] and row["sample_age"] < 20
        assert all(10 << 20 < e["rss"] < res["memory_total"] for e in row["engines"])
    engine = host_row(found, HOSTS[0])["engines"][0]
    release = tmp_path / "release"
    holding = background(f"def hold():\n    kept = b'1' * (200 << 20)\n{until_released(release, 40)}"
                         "    return len(kept)\n"
                         f"print(json.dumps(c[{engine['id']}].apply_sync(hold)))")
    try:
        def risen(s):
            now = next(e for e in host_row(s, HOSTS[0])["engines"] if e["id"] == engine["id"])
            return now["rss"] >= engine["rss"] + (150 << 20)
        state(cluster.token, risen, timeout=35)
    finally:
        release.touch()
        assert holding.wait(timeout=120) == 0


def until_released(release, seconds):
    """Lines of a task's function (indented) that keep it running until the file *release*
    exists (the test saw what it waited for), *seconds* at most."""
    return (f"    import os, time\n    for _ in range({seconds * 10}):\n"
            f"        if os.path.exists({str(release)!r}):\n            break\n"
            "        time.sleep(0.1)\n")


def background(code):
    """*code* run by a client of the cluster in a new Python, not waited for (`with_client`
    waits)."""
    program = "\n".join(["import json, time", "import ipyparallel as ipp",
                          f"c = ipp.Client(profile={PROFILE!r}, timeout=20)", code])
    return subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, cluster):
    """The dashboard open in Chromium; ``page.errors``: what its script threw or logged as errors."""
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.errors = []
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.on("console", lambda message: message.type == "error" and opened.errors.append(message.text))
    opened.goto(f"http://127.0.0.1:{PORT}/ipp-dashboard/?token={cluster.token}")
    ARTIFACTS.mkdir(exist_ok=True)
    yield opened
    opened.close()


#: The one running task's "running for" seconds, once the page shows at least *since* (else null).
RUNNING = ("since => { const bars = document.querySelectorAll('#stream rect.running');"
           " if (bars.length !== 1 || document.querySelector('[data-total=running] b').textContent !== '1')"
           " return null; const seconds = parseFloat(bars[0].textContent.match(/running for ([0-9.]+) s/)[1]);"
           " return seconds >= since ? seconds : null; }")


@needs_chromium
def test_a_task_of_up_to_60_s_is_seen_running_all_along_then_done(page, tmp_path):
    """The task runs until the page showed its bar grown by 25 s (60 s at most)."""
    release = tmp_path / "release"
    job = background(f"def long():\n{until_released(release, 60)}\n"
                     "print(json.dumps(c.load_balanced_view().apply_sync(long)))")
    try:
        first = page.wait_for_function(RUNNING, arg=5, timeout=60_000).json_value()
        seen = time.monotonic()
        later = page.wait_for_function(RUNNING, arg=first + 25, timeout=60_000).json_value()
        grown = time.monotonic() - seen
        page.screenshot(path=str(ARTIFACTS / "dashboard-running.png"), full_page=True)
        assert first <= 15 and abs(later - first - grown) <= 10  # the same bar, grown with the clock
        release.touch()
        assert job.wait(timeout=90) == 0
    finally:
        job.kill()
    page.wait_for_function("document.querySelectorAll('#stream rect.running').length === 0"
                           " && document.querySelector('[data-total=running] b').textContent === '0'",
                           timeout=10_000)
    assert page.errors == []


FAILING = """
def parse_record(n):
    raise ValueError(f"bad record {n} <b>in bold</b>")
said = []
for n in (7, 8):
    try:
        said.append(["no error", c.load_balanced_view().apply_sync(parse_record, n)])
    except ipp.RemoteError as error:
        said.append([error.ename, error.evalue])
print(json.dumps(said))
"""
#: What FAILING's client is told: each of its two tasks raised on an engine.
RAISED = [["ValueError", "bad record 7 <b>in bold</b>"], ["ValueError", "bad record 8 <b>in bold</b>"]]


def raised(found):
    """How many tasks of FAILING's kind the dashboard's data counts (their group of failures)."""
    return sum(group["count"] for group in found["failures"]
               if (group["ename"], group["place"]) == ("ValueError", "parse_record"))


@needs_chromium
def test_a_task_that_raises_is_on_the_failures_panel_with_its_traceback(page, cluster):
    before = raised(state(cluster.token, lambda s: s["totals"] is not None))
    assert with_client(FAILING, PROFILE) == RAISED
    count = str(before + 2)  # the two, each counted once
    page.wait_for_function("count => [...document.querySelectorAll('#failures tr[data-ename=ValueError]')]"
                           ".some(row => row.cells[1].textContent === 'parse_record'"
                           " && row.cells[2].textContent === count)", arg=count, timeout=30_000)
    row = page.query_selector('#failures tr[data-ename="ValueError"]:has-text("parse_record")')
    cells = [cell.text_content() for cell in row.query_selector_all("td")]
    assert cells[0:3] == ["ValueError", "parse_record", count]
    assert cells[6] == "bad record 8 <b>in bold</b>"  # as text: the page made no markup of it
    assert row.query_selector("b") is None
    row.query_selector("button").click()
    page.wait_for_function("document.getElementById('traceback-text').textContent"
                           ".includes('ValueError: bad record 8')", timeout=10_000)
    assert "in parse_record" in page.text_content("#traceback-text")
    page.screenshot(path=str(ARTIFACTS / "dashboard-failures.png"), full_page=True)
    assert page.errors == []


def test_an_engine_killed_shows_as_restarted(cluster, fake_hosts):
    state(cluster.token, lambda s: host_row(s, "127.0.2.2")["registered"] == 2)
    pid = sorted(v[1] for v in on(engines_by_id(PROFILE), "host2").values())[0]
    fake_hosts.hosts[1].run(f"kill -9 {pid}")
    found = state(cluster.token, lambda s: any(e["restarts"] for e in host_row(s, "127.0.2.2")["engines"])
                  and host_row(s, "127.0.2.2")["registered"] == 2, timeout=90)
    assert sum(e["restarts"] for e in host_row(found, "127.0.2.2")["engines"]) == 1


def test_the_dashboard_and_its_history_live_through_controller_and_jupyter_restarts(cluster, fake_hosts):
    earlier = state(cluster.token, lambda s: s["totals"] is not None)
    assert with_client(FAILING, PROFILE) == RAISED
    assert with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(20)))))",
                       PROFILE) == 20
    before = state(cluster.token, lambda s: s["totals"] and raised(s) == raised(earlier) + 2
                   and s["totals"]["failed"] >= earlier["totals"]["failed"] + 2)
    master = fake_hosts.hosts[0]
    pids = master.run(f"pgrep -f '^[^ ]*python[0-9.]* [^ ]*/{NAME}/host1/ipp_remote master[.]controller ' || true")
    master.run(f"kill -9 {' '.join(pids.split())} 2>/dev/null || true")  # one may end meanwhile
    found = state(cluster.token, lambda s: s["controller"]["restarts"] >= 1 and s["error"] is None
                  and all(host_row(s, h)["registered"] == 2 for h in HOSTS), timeout=60)
    assert found["controller"]["last_restart"]
    result, master_json = _json(cluster, "master.status")  # the same count, read by host_status.sh
    assert (master_json["hosts"][0]["controller_restarts"],
            master_json["hosts"][0]["controller_last_restart"]) == (
        found["controller"]["restarts"], found["controller"]["last_restart"])
    assert found["totals"]["completed"] >= before["totals"]["completed"]  # the hub counts anew
    assert found["totals"]["failed"] == before["totals"]["failed"]
    jupyter = master.run(f"pgrep -f '^[^ ]*python[0-9.]* [^ ]*/jupyter[- ]server .*--port={PORT} ' || true")
    assert jupyter.split()
    master.run(f"kill -9 {' '.join(jupyter.split())} 2>/dev/null || true")
    again = state(cluster.token, lambda s: s["controller"]["started"] == found["controller"]["started"]
                  and s["totals"] is not None and s["error"] is None, timeout=90)
    assert again["totals"]["completed"] >= before["totals"]["completed"]
    assert again["totals"]["failed"] == before["totals"]["failed"]
    assert [g["ename"] for g in again["failures"]] == [g["ename"] for g in before["failures"]]
    assert with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(5)))))",
                       PROFILE) == 5
    state(cluster.token, lambda s: ended(s) >= 5)  # the stream goes on


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
    assert info["version"] == tasks.__version__
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


#: The tasks of the flood: the page's data is bounded by the stream's window and the number of
#: engines, never by the tasks (test_dashboard_stream.py fills a whole window with 100000);
#: what a real flood adds is the rate, reached within seconds.
FLOOD = 10_000
#: The tasks that the history says were completed before (as after a restart of the controller).
BEFORE = 100_000 - FLOOD


def carry_over(tasks):
    """Add *tasks* to what the dashboard's history (the master's ``dashboard.sqlite``) says
    one engine completed before the controller's last restart: a history of that many tasks,
    without running them. Done while no task runs: the dashboard writes an engine's row only
    when its count changed."""
    import sqlite3
    path = os.path.expanduser(f"~/.ipp-cluster/{NAME}/host1/dashboard.sqlite")
    with sqlite3.connect(path, timeout=30) as db:
        changed = db.execute("UPDATE engine SET carried = carried + ? WHERE rowid ="
                             " (SELECT MIN(rowid) FROM engine)", (tasks,)).rowcount
    db.close()
    assert changed == 1, path


@pytest.mark.slow
@needs_chromium
def test_a_flood_of_tiny_tasks_on_a_history_of_100000_keeps_the_page_refreshing_with_a_small_payload(
        page, cluster):
    page.wait_for_selector('tr[data-host="127.0.2.2"]')
    updated = page.text_content("#controller")
    before = state(cluster.token, lambda s: s["totals"] is not None)["totals"]["completed"]
    carry_over(BEFORE)
    state(cluster.token, lambda s: s["totals"]["completed"] >= before + BEFORE)
    assert with_client(f"view = c.load_balanced_view()\nfor _ in range({FLOOD // 5000}):\n"
                       "    view.map_sync(lambda x: None, range(5000))\nprint(json.dumps(True))",
                       PROFILE, timeout=600)
    found = state(cluster.token, lambda s: s["totals"] is not None
                  and s["totals"]["completed"] >= before + 100_000)
    status, body = get("/ipp-dashboard/state", cluster.token)
    assert status == 200 and len(body) <= 300_000, len(body)
    print(f"dashboard state at {ended(found)} tasks in the window: {len(body)} bytes,"
          f" read in {json.loads(body)['cost']['seconds']} s")
    page.wait_for_function(f"document.getElementById('controller').textContent !== {updated!r}"
                           " && parseInt(document.querySelector('[data-total=completed] b').textContent)"
                           " >= 100000 && document.getElementById('error').textContent === ''",
                           timeout=10_000)
    assert page.errors == []


@pytest.mark.slow
@needs_chromium
def test_200_engines_on_4_hosts_read_at_a_glance(browser, fake_hosts, tmp_path):
    hosts = (2, 3, 4, 5)
    inventory = three_host_inventory(tmp_path, fake_hosts, "dash200", PORT + 1, engine_hosts=hosts,
                                     ENGINE_TIMEOUT=600)
    (inventory / "hosts").write_text("[master]\n127.0.2.1\n[engines]\n" + "".join(
        f"127.0.2.{n} engines=50\n" for n in hosts))
    try:
        up = run_fab("cluster.up", inventory=inventory, key=fake_hosts.client_key, timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr
        url = run_fab("master.url", inventory=inventory, key=fake_hosts.client_key)
        token = re.search(r"^Dashboard: \S+\?token=(\w+)$", url.stdout, re.MULTILINE)[1]
        ARTIFACTS.mkdir(exist_ok=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{PORT + 1}/ipp-dashboard/?token={token}")
        for n in hosts:
            page.wait_for_selector(f'tr[data-host="127.0.2.{n}"]:has-text("50/50 registered")'
                                   f':has-text("50 idle"):has(.bars)', timeout=60_000)
        assert page.locator(".engine").count() == 0  # summed up, not 200 chips
        assert with_client("print(json.dumps(len(c.load_balanced_view().map_sync(abs, range(2000)))))",
                           "dash200") == 2000
        page.wait_for_function("(/^([0-9]+) tasks ended and 0 running on 4 hosts in the last 5 minutes$/"
                               ".exec(document.getElementById('stream-summary').textContent) || [0, 0])[1]"
                               " >= 2000"
                               " && parseInt(document.querySelector('[data-total=completed] b')"
                               ".textContent) >= 2000", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-200-engines.png"), full_page=True)
        page.close()
    finally:
        down = run_fab("cluster.down", inventory=inventory, key=fake_hosts.client_key)
    assert down.returncode == 0, down.stdout + down.stderr
