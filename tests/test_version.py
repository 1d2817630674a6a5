"""
The version is written in one place, ``tasks.__version__``: CHANGELOG.md's newest release
says the same, its releases go newest first with a date each, and ``cluster.info --json``
carries it.
"""

import datetime
import re
from pathlib import Path

import tasks
from tasks.inventory.folder import Host
from tasks.show import documents
from tasks.ssh.fleet import OK, HostResult

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
RELEASE = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")


def headings():
    """The changelog's ``## `` lines, in file order."""
    return [line for line in CHANGELOG.read_text().splitlines() if line.startswith("## ")]


def releases():
    """``[(version tuple, date), ...]`` of the released versions' headings, in file order."""
    found = []
    for line in headings()[1:]:
        match = RELEASE.match(line)
        assert match, f"not '## [X.Y.Z] - YYYY-MM-DD': {line!r}"
        assert SEMVER.match(match["version"]), line
        found.append((tuple(int(part) for part in match["version"].split(".")),
                      datetime.date.fromisoformat(match["date"])))
    return found


def test_the_version_is_semver():
    assert SEMVER.match(tasks.__version__), tasks.__version__


def test_the_changelog_starts_with_unreleased_then_releases_newest_first_each_dated():
    assert headings()[0] == "## [Unreleased]"
    found = releases()
    assert found, "no released version in CHANGELOG.md"
    versions = [version for version, _ in found]
    assert all(a > b for a, b in zip(versions, versions[1:])), versions
    dates = [date for _, date in found]
    assert all(a >= b for a, b in zip(dates, dates[1:])), dates


def test_the_newest_release_in_the_changelog_is_the_version():
    newest = releases()[0][0]
    assert ".".join(map(str, newest)) == tasks.__version__


def test_cluster_info_carries_the_version():
    results = {"node01": HostResult(Host("node01", "node01"), OK, facts={"cores": "2"})}
    document = documents.info(results)
    assert document["version"] == tasks.__version__
    assert list(document)[:2] == ["command", "version"]
