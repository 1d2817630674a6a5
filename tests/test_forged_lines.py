"""
Unit tests: what a peer makes the controller log is never read as the hub's, the nanny's or
launch's own line (``tasks/remote/ipp_screens.py``, ``lib.sh``), and an engine uuid of the
wrong form, from a log or from the probe's report, is dropped where fab reads it rather
than steering it or ending it with a traceback (``probe.py``, ``protocol.py``, the steps).
"""

import json
import logging

from ipyparallel.controller.app import IPController
from traitlets.config.application import LevelFormatter

from tasks.inventory.folder import Inventory, Settings, parse_hosts
from tasks.remote import host_inbox
from tasks.remote import ipp_screens as screens
from tasks.remote import probe
from tasks.remote.protocol import parse_probe
from tasks.steps import lifecycle, status
from tests.test_screens import shell

FORGED = "registration::purging stalled registration 1:nodeA/1/99999999999999999999"


def hub_line(level, message):
    """A line of the hub's log, as ipyparallel's controller formats it (its own settings)."""
    app = IPController()
    formatter = LevelFormatter(app.log_format, datefmt=app.log_datefmt)
    return formatter.format(logging.LogRecord("IPController", level, __file__, 1, message, (), None))


def purged(tmp_path, *lines):
    path = tmp_path / "c-controller.log"
    path.write_text("".join(line + "\r\n" for line in lines))
    return screens.SessionLog(path).read().purged


def test_a_purge_is_read_only_in_a_whole_line_of_the_hub_with_a_uuid_of_the_right_form(tmp_path):
    real = "registration::purging stalled registration 3:nodeA/2/1765100000000000000"
    new_form = "registration::purging stalled registration 4:ann@[fe80::1]/1/17651/0123456789abcdef"
    assert purged(tmp_path, hub_line(logging.WARNING, real), hub_line(logging.WARNING, new_form)) == [
        "nodeA/2/1765100000000000000", "ann@[fe80::1]/1/17651/0123456789abcdef"]
    forged = [
        hub_line(logging.WARNING, f"host inbox: a report refused: Invalid Signature: b'{FORGED}'"),
        hub_line(logging.ERROR, f"a message from b'x' refused: {FORGED.replace('9' * 20, '5')}"),
        hub_line(logging.INFO, FORGED.replace("9" * 20, "5")),  # not the hub's warning
        FORGED.replace("9" * 20, "5"),  # no prefix: not the hub's line
        "junk " + hub_line(logging.WARNING, FORGED.replace("9" * 20, "5")),
    ]
    weird = ["nodeA/x/5", "nodeA/1/abc", "nodeA/1/99999999999999999999", "no de/1/5", "nodeA/1/5/XYZ",
             "nodeA/1/5/0123456789ABCDEF", "nodeA/0/5", "nodeA/1/5 trailing"]
    forged += [hub_line(logging.WARNING, f"registration::purging stalled registration 1:{uuid}")
               for uuid in weird]
    assert purged(tmp_path, *forged) == []


def test_a_nanny_restart_is_counted_only_at_the_start_of_a_line(tmp_path):
    restart = "=== nanny 2026-12-03 07:09:01: restart: the controller ended (exit code 1); starting it again now"
    path = tmp_path / "t-controller.log"
    path.write_text("\n=== Thu Dec  3 07:00:00 UTC 2026: t-controller\n"
                    + hub_line(logging.WARNING, f"host inbox: a report refused: b'{restart}'") + "\r\n"
                    + "x" + restart + "\r\n" + restart.replace("07:09:01", "7:9:1") + "\r\n")
    log = screens.SessionLog(path).read()
    assert (log.restarts, log.last_restart) == (0, None)
    assert shell('restarts "$1"', str(path)) == "0\t\n"
    with path.open("a") as more:
        more.write(restart + "\r\n")
    assert (log.read().restarts, log.last_restart) == (1, "2026-12-03 07:09:01")
    assert shell('restarts "$1"', str(path)) == "1\t2026-12-03 07:09:01\n"


WEIRD = ["nodeA/x/5", "nodeA/1/abc", "nodeA", "nodeA/1", "nodeA/1/5/6", "", "/1/5", 7, None, ["nodeA/1/5"]]


def test_an_engine_uuid_s_label_is_a_label_the_host_inbox_takes():
    assert screens.UUID.startswith(host_inbox.LABEL.pattern.removesuffix(r"\Z") + "/")


def test_orphans_of_the_wrong_form_are_dropped_without_a_traceback():
    registered = {0: "nodeA/1/100", 1: "nodeA/2/x", 2: 5}
    assert probe.orphans(WEIRD + ["nodeA/2/200"], registered) == ["nodeA/2/200"]
    assert screens.engine_uuid("nodeA/1/99999999999999999999") is None
    assert screens.engine_uuid("nodeA/1/5/0123456789abcdef") == ("nodeA", 1, 5)


def test_fab_drops_orphans_of_the_wrong_form_from_the_probe_s_report():
    report = parse_probe({"probe": json.dumps({"engines": {}, "orphans": WEIRD + ["nodeA/2/200"]})})
    assert report["orphans"] == ["nodeA/2/200"]
    assert parse_probe({"probe": json.dumps({"engines": {}, "orphans": "nodeA/1/5"})})["orphans"] == []
    probed = {"orphans": WEIRD + ["nodeA/2/200", "nodeB/1/3"]}
    assert status._orphans("nodeA", {1, 2}, probed) == [2]


def test_orphans_of_the_wrong_form_are_never_renewed():
    master, engines = parse_hosts("[master]\nm\n[engines]\nnodeA\n")
    inventory = Inventory(master, engines, Settings(), "inv")

    class Fleet:  # what would run on the hosts: nothing, for uuids of the wrong form
        def run(self, scripts, slack):
            self.scripts = scripts
            return {}
    fleet = Fleet()
    assert lifecycle.renew_orphans(fleet, inventory, WEIRD) == {} and fleet.scripts == {}
