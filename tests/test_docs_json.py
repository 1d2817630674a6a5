"""
The JSON documents written in the docs (docs/json.md, and ``cluster.hosts --json`` in
docs/inventory.md) against what ``--json`` prints on a real cluster on this machine: the
same keys at every level, no more, no fewer.

The documents in the docs are annotated (``# ...`` comments, ``...`` for more of the
same); they are read as JSON once those are taken out.
"""

import json
import re
import shutil
import sys

import pytest

from tests.conftest import PROJECT, fab
from tests.sshhosts import write_inventory
from tests.test_docs import fenced_blocks
from tests.waiting import wait_until

NAME = "ippdocs"  # its own cluster name, profile and port: nothing of another test's
PORT = 18975


def without_annotations(text):
    """*text* with its ``# comments`` (outside strings) and ``...`` placeholders taken out."""
    kept, in_string, index = [], False, 0
    while index < len(text):
        char = text[index]
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            in_string = not in_string
        elif char == "#" and not in_string:
            index = text.find("\n", index)
            index = len(text) if index < 0 else index
            continue
        kept.append(char)
        index += 1
    return re.sub(r",\s*\.\.\.(?=\s*[\]}])", "", "".join(kept))


def written_documents():
    """``{command: document}`` of every JSON document written in docs/json.md and inventory.md."""
    found = {}
    for page in ("json.md", "inventory.md"):
        for _, text in fenced_blocks(PROJECT / "docs" / page):
            if text.startswith('{"command":') or text.startswith('{"master":'):
                document = json.loads(without_annotations(text))
                found[document.get("command", "cluster.hosts")] = document
    return found


def keys(value, path="", into=None):
    """``{path: set of keys}`` of every object in *value*; a list's objects share one path."""
    into = {} if into is None else into
    if isinstance(value, dict):
        into.setdefault(path, set()).update(value)
        for key, child in value.items():
            keys(child, f"{path}.{key}", into)
    elif isinstance(value, list):
        for child in value:
            keys(child, f"{path}[]", into)
    return into


def test_the_annotated_documents_are_read_as_json():
    assert without_annotations('{"a": 1,   # one\n "b": ["x", ...], "c": "#1"}') == (
        '{"a": 1,   \n "b": ["x"], "c": "#1"}')
    assert set(written_documents()) == {"cluster.status", "cluster.info", "cluster.check", "cluster.hosts"}


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """A cluster of this machine (the master and 1 engine, no SSH), up; down after."""
    if not shutil.which("screen"):
        pytest.skip("needs screen (apt-get install screen)")
    folder = tmp_path_factory.mktemp("docs-inventory")
    notebooks = tmp_path_factory.mktemp("docs-notebooks")
    inventory = write_inventory(folder, "[master]\nlocalhost\n\n[engines]\nlocalhost engines=1\n",
                                CLUSTER_ENV=sys.prefix, CLUSTER_NAME=NAME, IPP_PROFILE=NAME,
                                JUPYTER_PORT=PORT, NOTEBOOK_DIR=notebooks)
    try:
        up = fab("cluster.up", inventory=inventory)
        assert up.returncode == 0, up.stdout + up.stderr
        yield inventory
    finally:
        down = fab("cluster.down", inventory=inventory)
        assert down.returncode == 0, down.stdout + down.stderr


def printed(inventory, *command):
    result = fab(*command, "--json", inventory=inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_the_documents_written_have_the_keys_json_prints(local_cluster):
    written = written_documents()

    def sampled():  # the engines' supervisor samples its host every 5 s: null until the first
        status = printed(local_cluster, "cluster.status")
        assert all(host.get("resources") for host in status["hosts"]), status
        return status
    status = wait_until(sampled, 60, "a sample of each host in cluster.status", interval=1)
    real = {"cluster.status": status, "cluster.info": printed(local_cluster, "cluster.info"),
            "cluster.check": printed(local_cluster, "cluster.check"),
            "cluster.hosts": printed(local_cluster, "cluster.hosts")}
    differences = []
    for command in ("engines.status", "master.status"):  # the same document, of fewer hosts' roles
        documented, found = keys(written["cluster.status"]), keys(printed(local_cluster, command))
        differences += [f"{command} {path or '(top)'}: printed {sorted(found[path] - documented.get(path, set()))}"
                        " that the cluster.status document does not show"
                        for path in found if not found[path] <= documented.get(path, set())]
    for command, document in real.items():
        documented, found = keys(written[command]), keys(document)
        for path in sorted(set(documented) | set(found)):
            if path not in found:  # a list empty here (no GPU on this machine): nothing to compare
                continue
            if found[path] != documented.get(path, set()):
                differences.append(f"{command} {path or '(top)'}: printed {sorted(found[path])}, "
                                   f"written {sorted(documented.get(path, set()))}")
    assert not differences, "\n".join(differences)
