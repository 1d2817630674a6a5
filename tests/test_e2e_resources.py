"""
End to end: engines that fit their hosts, on the fake hosts. BLAS runs with the cores
shared among a host's engines (read inside each engine with threadpoolctl); a host with
4 GPUs (a stand-in nvidia-smi, `tests.fakegpu`, in that host alone) runs one engine on
each; SETUP with Debian's Lmod brings a tcsh user's cluster up with CLUSTER_ENV empty,
and a SETUP that fails starts nothing on its host.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests import fakegpu
from tests.conftest import fab, leftovers, users, with_client, write_inventory
from tests.sshhosts import FakeHosts

CORES = os.cpu_count()
LMOD = Path("/etc/profile.d/lmod.sh")
needs_lmod = pytest.mark.skipif(not LMOD.exists(), reason="needs Debian's lmod (apt-get install lmod)")

BLAS = """
def blas():
    import os, socket, numpy, threadpoolctl
    return (socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES"),
            [each["num_threads"] for each in threadpoolctl.threadpool_info() if each["user_api"] == "blas"])
print(json.dumps(c[:].apply_sync(blas)))
"""


def row(table, host):
    """The cells of *host*'s row in a rich table printed by fab."""
    line = next(line for line in table.splitlines() if f" {host} " in line)
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def test_each_engine_runs_blas_on_its_share_of_the_cores(fake_hosts, tmp_path):
    hosts = f"[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines={CORES}\n127.0.2.3 engines=1\n"
    inventory = write_inventory(tmp_path, hosts, CLUSTER_ENV=sys.prefix, CLUSTER_NAME="ippthreads",
                                IPP_PROFILE="ippthreads", JUPYTER_PORT=18950,
                                KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        seen = with_client(BLAS, "ippthreads")
        assert sorted(map(tuple, ((h, tuple(t)) for h, _, t in seen))) == sorted(
            [("host2", (1,))] * CORES + [("host3", (CORES,))])
        status = run("cluster.status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert row(status.stdout, "127.0.2.2")[4:7] == [f"{CORES}/{CORES}", "0", "1"]  # restarts, threads
        assert row(status.stdout, "127.0.2.3")[4:7] == ["1/1", "0", str(CORES)]
        assert row(up.stdout, "127.0.2.3")[1:4] == ["1", "1", str(CORES)]  # the engines table
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(fake_hosts, (1, 2, 3)) == {}


@pytest.fixture(scope="module")
def gpu_host(fake_hosts):  # skipped where fake_hosts are
    """A fake host, 127.0.2.22, with 4 GPUs as far as its nvidia-smi says."""
    with FakeHosts(1, first=22, gpus=4) as hosts:
        yield hosts


def test_a_host_with_four_gpus_runs_one_engine_on_each(gpu_host, fake_hosts, tmp_path):
    inventory = write_inventory(tmp_path, "[master]\n127.0.2.22\n[engines]\n127.0.2.22 gpus=auto\n",
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME="ippgpu", IPP_PROFILE="ippgpu",
                                JUPYTER_PORT=18951, KNOWN_HOSTS=gpu_host.known_hosts)

    def run(*args, inventory=inventory, key=gpu_host.client_key):
        return fab(*args, inventory=inventory, key=key)
    info = run("cluster.info")
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"4 x {fakegpu.MODEL}" in row(info.stdout, "127.0.2.22")
    try:
        up = run("cluster.up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "engines registered: 4/4" in up.stdout
        seen = with_client(BLAS, "ippgpu")
        assert sorted(device for _, device, _ in seen) == [fakegpu.uuid(i) for i in range(4)]
        assert {tuple(threads) for _, _, threads in seen} == {(max(1, CORES // 4),)}
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(gpu_host, [1]) == {}
    # A host without GPUs: gpus=auto is refused before anything starts.
    bare = write_inventory(tmp_path / "bare", "[master]\n127.0.2.1\n[engines]\n127.0.2.2 gpus=auto\n",
                           CLUSTER_ENV=sys.prefix, KNOWN_HOSTS=fake_hosts.known_hosts)
    check = run("cluster.check", inventory=bare, key=fake_hosts.client_key)
    assert check.returncode == 1
    assert ("error: 127.0.2.2: gpus=auto but nvidia-smi is not on the PATH here: correct gpus= in"
            " the inventory, or check the NVIDIA driver with nvidia-smi there") in check.stderr


MODULE = """\
prepend_path("PATH", "{env}/bin")
setenv("IPP_LAB_MODULE", "ippenv loaded")
"""


@pytest.fixture
def modules(shared_env):
    """A folder of modulefiles every user can read: ``ippenv`` puts *shared_env* on the PATH."""
    folder = tempfile.mkdtemp(prefix="ipp-modules-")
    os.chmod(folder, 0o755)
    (Path(folder) / "ippenv.lua").write_text(MODULE.format(env=shared_env))
    os.chmod(Path(folder) / "ippenv.lua", 0o644)
    yield folder
    shutil.rmtree(folder)


@needs_lmod
def test_setup_loads_a_module_for_a_tcsh_user_with_cluster_env_empty(fake_hosts, shared_env, modules,
                                                                      tmp_path):
    tcsh = shutil.which("tcsh")
    if not tcsh:
        pytest.skip("tcsh is not installed")
    user = "ipplmod"
    hosts = (f"[master]\n{user}@127.0.2.1\n[engines]\n{user}@127.0.2.2 engines=1\n"
             f"{user}@127.0.2.3 engines=1\n")
    inventory = write_inventory(tmp_path, hosts, CLUSTER_ENV="", CLUSTER_NAME=user, IPP_PROFILE=user,
                                JUPYTER_PORT=18952, KNOWN_HOSTS=fake_hosts.known_hosts,
                                SETUP=f"'module use {modules} && module load ippenv'")

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    with users(user, shell=tcsh):
        home = fake_hosts.hosts[0].run(f"getent passwd {user} | cut -d: -f6").strip()
        try:
            up = run("cluster.up")
            assert up.returncode == 0, up.stdout + up.stderr
            assert "engines registered: 2/2" in up.stdout
            client_file = f"{home}/.ipython/profile_{user}/security/ipcontroller-client.json"
            code = ("def where():\n    import os, sys\n"
                    "    return os.environ.get('IPP_LAB_MODULE'), sys.prefix\n"
                    "print(json.dumps(c[:].apply_sync(where)))")
            seen = with_client(code, connect=[f"c = ipp.Client({client_file!r}, timeout=20)"])
            assert [tuple(each) for each in seen] == [("ippenv loaded", shared_env)] * 2
        finally:
            down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(fake_hosts, (1, 2, 3)) == {}


@needs_lmod
def test_a_setup_that_fails_is_named_and_nothing_starts_on_its_host(fake_hosts, tmp_path):
    hosts = ("[master]\n127.0.2.1\n[engines]\n127.0.2.2 engines=1\n"
             "127.0.2.3 engines=1 setup='module load nosuchmodule'\n")
    inventory = write_inventory(tmp_path, hosts, CLUSTER_ENV=sys.prefix, CLUSTER_NAME="ippsetup",
                                IPP_PROFILE="ippsetup", JUPYTER_PORT=18953,
                                KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    check = run("cluster.check")
    said = "127.0.2.3: exit 1: SETUP failed (exit 1): "
    assert check.returncode == 1 and said in check.stderr, check.stdout + check.stderr
    assert "nosuchmodule" in check.stderr.split(said)[1].splitlines()[0]
    try:
        up = run("cluster.up")
        assert up.returncode == 1 and said in up.stderr, up.stdout + up.stderr
        assert row(up.stdout, "127.0.2.2")[1:3] == ["1", "1"]
        assert leftovers(fake_hosts, [3]) == {}
    finally:
        down = run("cluster.down")
    assert down.returncode == 0, down.stdout + down.stderr  # a stop needs no SETUP
    assert leftovers(fake_hosts, (1, 2, 3)) == {}
