"""
End to end: a cluster at scale keeps every engine. An engine whose registration the
controller dropped (an orphan) is found and started again; a master whose login allows
few open files still takes its engines, and one whose hard limit is too low is named
before anything starts. Host 1 is the master; hosts 2-5 run the engines.
"""

import os
import re
import sys
from pathlib import Path

import pytest

from tasks.remote.shared import screen_logs as screens
from tests.conftest import FakeHosts, engines_per_host, fab_for, leftovers, three_host_inventory
from tests.conftest import write_inventory
from tests.conftest import fab as run_fab
from tests.waiting import wait_until

NAME = PROFILE = "scale"
PORT = 18891
PROFILE_DIR = Path(os.path.expanduser("~")) / ".ipython" / f"profile_{PROFILE}"
IGNORE = PROFILE_DIR / "ignore_first_heart"

# Loaded by ipcontroller from the profile: the hub ignores the first heartbeat of the
# engines named (LABEL/N, one per line) in IGNORE, once each, as it does when a first
# heartbeat beats the registration to the hub (ipyparallel #700), and drops a stalled
# registration after 15 s instead of 60 s, so that the test does not wait that long
# (but long enough for an engine starting on a busy machine).
CONTROLLER_CONFIG = f"""
from ipyparallel.controller.hub import Hub

_handle_new_heart, _init = Hub.handle_new_heart, Hub.__init__


def handle_new_heart(self, heart):
    engine = "/".join(heart.decode().split("/")[:2])  # LABEL/N of LABEL/N/TIME/RANDOM
    try:
        ignored = open({str(IGNORE)!r}).read().split()
    except OSError:
        ignored = []
    if engine in ignored:
        ignored.remove(engine)
        open({str(IGNORE)!r}, "w").write("\\n".join(ignored))
        self.log.info("heartbeat::ignoring new heart: %r", heart)
        return
    _handle_new_heart(self, heart)


def __init__(self, **kwargs):
    _init(self, **kwargs)
    self.registration_timeout = 15


Hub.handle_new_heart, Hub.__init__ = handle_new_heart, __init__
"""


@pytest.fixture(scope="module")
def fab_here(fake_hosts, tmp_path_factory):
    """``fab`` with this module's inventory: the master on host1, engines=2 on hosts 2-4,
    the controller patched as `CONTROLLER_CONFIG` says. Downed after the module."""
    inventory = three_host_inventory(tmp_path_factory.mktemp("inv"), fake_hosts, NAME, PORT)
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    (PROFILE_DIR / "ipcontroller_config.py").write_text(CONTROLLER_CONFIG)
    with fab_for(fake_hosts, inventory) as run:
        yield run
    (PROFILE_DIR / "ipcontroller_config.py").unlink()
    IGNORE.unlink(missing_ok=True)


@pytest.fixture
def down(fab_here):
    """The cluster stopped before and after the test (each test passes alone, in any order)."""
    assert fab_here("cluster.down").returncode == 0
    yield fab_here
    IGNORE.unlink(missing_ok=True)
    fab_here("cluster.down")


def _row(out, host):
    return next(line for line in out.splitlines() if line.startswith(f"│ {host} "))


def test_cluster_up_starts_again_an_engine_whose_registration_was_dropped(down):
    IGNORE.write_text("127.0.2.3/2\n")
    up = down("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert re.search(r"engines? (\d+, )*2(, \d+)*( and \d+ more)? started again: the controller"
                     " had dropped the registration", _row(up.stdout, "127.0.2.3"))  # others too?
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 2}
    log = Path.home() / ".ipp-cluster" / NAME / "host1" / f"{NAME}-controller.log"
    purged = screens.SessionLog(str(log)).read().purged  # by this controller, since its start
    assert [uuid for uuid in purged if uuid.startswith("127.0.2.3/2/")]  # it was an orphan
    engine_log = Path.home() / ".ipp-cluster" / NAME / "host3" / f"{NAME}-engine-2.log"
    assert "renewal: the controller dropped this engine's registration" in engine_log.read_text()
    assert down("cluster.status").returncode == 0


def test_status_names_an_orphan_and_engines_start_starts_it_again(down, fake_hosts):
    up = down("cluster.up")
    assert up.returncode == 0, up.stdout + up.stderr
    IGNORE.write_text("127.0.2.4/1\n")
    log = Path.home() / ".ipp-cluster" / NAME / "host1" / f"{NAME}-controller.log"
    before = log.stat().st_size
    fake_hosts.hosts[3].run("pkill -KILL -x ipengine-1")  # engine 1 alone: its supervisor starts it again
    purge = re.compile(rb"purging stalled registration \d+:127\.0\.2\.4/1/")
    wait_until(lambda: purge.search(log.read_bytes()[before:]), 90,  # it is purged after 15 s
               "the controller's purge of the restarted engine 1's registration", interval=0.2)
    status = down("cluster.status")
    assert status.returncode == 1
    assert ("error: 127.0.2.4: engine 1 runs but is not registered (the controller dropped its"
            " registration; fab engines.start starts it again)") in status.stderr
    start = down("engines.start")
    assert start.returncode == 0, start.stdout + start.stderr
    assert re.search(r"engines? 1(, \d+)*( and \d+ more)? started again",
                     _row(start.stdout, "127.0.2.4"))
    assert down("cluster.status").returncode == 0
    assert engines_per_host(PROFILE) == {"host2": 2, "host3": 2, "host4": 2}


@pytest.fixture(scope="module")
def cramped_host(fake_hosts):  # skipped where fake_hosts are
    """A fake host, 127.0.2.21, whose logins may open 256 files at most (hard limit)."""
    with FakeHosts(1, first=21, open_files="256:256") as hosts:
        yield hosts


def test_check_names_a_master_whose_hard_limit_of_open_files_is_too_low(cramped_host, tmp_path):
    inventory = write_inventory(tmp_path, "[master]\n127.0.2.21\n[engines]\n127.0.2.21 engines=100\n",
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME=NAME, IPP_PROFILE=PROFILE,
                                JUPYTER_PORT=PORT, KNOWN_HOSTS=cramped_host.known_hosts)
    check = run_fab("cluster.check", inventory=inventory, key=cramped_host.client_key)
    up = run_fab("cluster.up", inventory=inventory, key=cramped_host.client_key)
    expected = ("error: 127.0.2.21: the master allows 256 open files (its hard limit, ulimit -Hn)"
                " but the controller of 100 engines needs about 300")
    assert check.returncode == 1 and expected in check.stderr
    assert up.returncode == 1 and expected in up.stderr
    assert leftovers(cramped_host, [1]) == {}  # nothing was started


@pytest.mark.slow
def test_a_master_allowed_256_open_files_takes_120_engines(fake_hosts, tmp_path):
    # A cluster of its own, whose controller is not the patched one of this module's.
    inventory = three_host_inventory(tmp_path, fake_hosts, "scale120", PORT, ENGINE_TIMEOUT=600)
    (inventory / "hosts").write_text("[master]\n127.0.2.1\n[engines]\n" + "".join(
        f"127.0.2.{n} engines=30\n" for n in (2, 3, 4, 5)))
    try:
        with fake_hosts.hosts[0].soft_open_files(256):  # a login's soft limit; the hard one allows more
            up = run_fab("cluster.up", inventory=inventory, key=fake_hosts.client_key, timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr
        assert engines_per_host("scale120") == {f"host{n}": 30 for n in (2, 3, 4, 5)}
        status = run_fab("cluster.status", inventory=inventory, key=fake_hosts.client_key)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        stopped = run_fab("cluster.down", inventory=inventory, key=fake_hosts.client_key)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert leftovers(fake_hosts, [1, 2, 3, 4, 5]) == {}
