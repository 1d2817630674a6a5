"""
End to end: the example notebooks on a cluster of fake SSH hosts, executed with
nbclient and, through ``cluster.tunnel``, run from the page in headless Chromium.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import FAB, PROJECT, fab, write_inventory
from tests.kernels import jupyter_kernel

NAME = "nbk"
PORT = 18871
ENGINES = {"host2": 2, "host3": 1}
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT / "test-artifacts"


@pytest.fixture(scope="module")
def cluster(fake_hosts, tmp_path_factory):
    """A master on host1, engines on host2 (2) and host3 (1); notebooks go to NOTEBOOK_DIR."""
    folder = tmp_path_factory.mktemp("nb")
    notebook_dir = folder / "notebooks"
    (notebook_dir / "ipp-examples").mkdir(parents=True)
    (notebook_dir / "ipp-examples" / "mine.ipynb").write_text("my own notebook")
    site_kernel(folder / "jupyter")
    inventory = write_inventory(
        folder / "inv", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=2\n127.0.2.3 engines=1\n",
        CLUSTER_ENV=sys.prefix, SETUP=f"'export JUPYTER_PATH={folder}/jupyter'",
        CLUSTER_NAME=NAME, IPP_PROFILE=NAME, JUPYTER_PORT=PORT, NOTEBOOK_DIR=notebook_dir,
        KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(*args, **kwargs):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key, **kwargs)
    run.inventory, run.notebook_dir = inventory, notebook_dir
    run.token = lambda: run("master.url").stdout.strip().splitlines()[-1].split("token=")[1]
    up = run("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    yield run
    run("cluster.down")


def site_kernel(jupyter_path):
    """A kernel spec of the site's (in JUPYTER_PATH), "site-python": this Python's IPython
    kernel with a PYTHONPATH of its own, as a site's kernel spec may set."""
    spec = jupyter_path / "kernels" / "site-python"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (site)", "language": "python", "env": {"PYTHONPATH": "/opt/site-lib"}}))


def execute(path, monkeypatch):
    """Run a notebook with nbclient, its kernel told the cluster's profile; returns it."""
    monkeypatch.setenv("IPP_PROFILE", NAME)
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    return notebook


def summary(notebook):
    """The JSON that a notebook's last cell prints."""
    return json.loads(notebook.cells[-1].outputs[0]["text"])


def test_up_puts_the_examples_on_the_master_and_keeps_what_is_there(cluster):
    examples = cluster.notebook_dir / "ipp-examples"
    shipped = sorted(p.name for p in (PROJECT / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in examples.glob("*.ipynb")) == sorted(shipped + ["mine.ipynb"])
    assert (examples / "mine.ipynb").read_text() == "my own notebook"
    (examples / shipped[0]).write_text("edited by the user")
    assert cluster("cluster.up").returncode == 0
    assert (examples / shipped[0]).read_text() == "edited by the user"
    shutil.copy(PROJECT / "notebooks" / shipped[0], examples / shipped[0])


def test_an_ipp_cluster_py_put_in_a_notebook_folder_never_runs_in_a_kernel_opened_there(cluster):
    """Someone with write access to a shared notebook folder puts an ``ipp_cluster.py``
    there: a kernel of the master's Jupyter opened in that folder (the site's kernel spec,
    with a PYTHONPATH of its own) never runs it; its ``ipp_cluster``, which made its
    ``ipp.Client``, is the one in the master's run folder. (CLUSTER_ENV is this Python's
    environment, where ``install.sh`` puts the hook: that hook leaves the name
    ``ipp_cluster`` free, so a kernel that loaded it by name would get the planted file.)"""
    planted, ran = cluster.notebook_dir / "ipp_cluster.py", cluster.notebook_dir.parent / "planted-ran"
    planted.write_text(f"open({str(ran)!r}, 'w').close()\ndef load_ipython_extension(shell): pass\n")
    said = []
    try:
        with jupyter_kernel(PORT, cluster.token(), "site-python") as kernel:
            reply = kernel.execute_interactive(
                "import os, ipyparallel as ipp, ipp_cluster; init = ipp.Client.__init__; print(os.getcwd(),"
                " getattr(init, 'ipp_cluster', 0), ipp_cluster.__file__, init.__globals__['__file__'])",
                timeout=60, output_hook=lambda message: said.append(message["content"].get("text", "")))
    finally:
        planted.unlink()
    assert reply["content"]["status"] == "ok", reply["content"]
    assert not ran.exists(), said
    module = Path.home() / ".ipp-cluster" / NAME / "host1" / "ipp_remote" / "jupyter" / "ipp_cluster.py"
    assert "".join(said).split() == [str(cluster.notebook_dir), "True", str(module), str(module)]


def test_notebooks_are_committed_without_outputs():
    for path in (PROJECT / "notebooks").glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
        assert "PROFILE" in notebook.cells[0].source and "PROFILE =" in notebook.cells[1].source


def test_getting_started_sees_the_engines_of_each_host(cluster, monkeypatch):
    notebook = execute(PROJECT / "notebooks" / "01-getting-started.ipynb", monkeypatch)
    assert summary(notebook) == {"engines_per_host": ENGINES, "parallel_equals_serial": True}
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    said = sorted(line.split(": ", 1)[1] for line in printed.splitlines() if " BLAS thread" in line)
    cores = os.cpu_count()  # the cores of a fake host, shared among its engines
    assert said == sorted(f"{max(1, cores // count)} BLAS thread(s), GPU none"
                          for count in ENGINES.values() for _ in range(count))


def test_parameter_sweep_matches_serial_and_plots(cluster, monkeypatch):
    notebook = execute(PROJECT / "notebooks" / "02-parameter-sweep.ipynb", monkeypatch)
    result = summary(notebook)
    assert result["points"] == 24 and result["parallel_equals_serial"] is True
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_the_page_runs_the_getting_started_notebook(cluster, fake_hosts):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, CLUSTER_INVENTORY=str(cluster.inventory))
    tunnel = subprocess.Popen([str(FAB), "-i", str(fake_hosts.client_key), "cluster.tunnel"],
                              cwd=PROJECT, env=env, stdout=subprocess.PIPE, text=True)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        url = re.fullmatch(r"Jupyter: (\S+)", tunnel.stdout.readline().strip())[1]
        base = url.split("/?")[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)  # the token logs the browser in; / leads to the file list
            page.wait_for_selector("text=ipp-examples", timeout=60_000)
            page.goto(f"{base}/tree/ipp-examples")
            for name in ("01-getting-started.ipynb", "02-parameter-sweep.ipynb"):
                page.wait_for_selector(f"text={name}", timeout=60_000)
            page.goto(f"{base}/notebooks/ipp-examples/01-getting-started.ipynb")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            # A fresh Jupyter may ask which kernel to start: the notebook's own, Python 3.
            dialog = page.get_by_role("button", name="Select", exact=True)
            try:
                dialog.click(timeout=15_000)
            except PlaywrightTimeout:
                pass
            page.get_by_role("menuitem", name="Run").click()
            page.get_by_text("Run All Cells", exact=True).click()
            try:
                output = page.wait_for_selector(
                    '.jp-OutputArea-output:has-text("engines_per_host")', timeout=180_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "getting-started.png"), full_page=True)
            shown = json.loads(output.inner_text())
            browser.close()
        assert shown == {"engines_per_host": ENGINES, "parallel_equals_serial": True}
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)
