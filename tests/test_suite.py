"""How `tests.suite` deals the files into shards: those that need the network together in
the first, the others so that the shards take about as long."""

from pathlib import Path

from tests import suite


def test_files_that_need_the_network_go_to_the_first_shard_and_the_rest_evens_out(tmp_path, monkeypatch):
    files = []
    for name, seconds, network in (("a", 300, True), ("b", 200, False), ("c", 200, False),
                                   ("d", 100, True), ("e", 100, False), ("f", 100, False)):
        path = tmp_path / f"test_{name}.py"
        path.write_text("pytestmark = pytest.mark.network\n" if network else "")
        files.append(path)
    monkeypatch.setattr(suite, "SECONDS", {f"test_{n}.py": s for n, s, _ in
                                           zip("abcdef", (300, 200, 200, 100, 100, 100), range(6))})
    shards = suite.deal(files, 3)
    assert [[p.name for p in shard] for shard in shards] == [
        ["test_a.py", "test_d.py"], ["test_b.py", "test_e.py"], ["test_c.py", "test_f.py"]]


def test_every_test_file_of_the_suite_is_dealt_once():
    files = sorted(Path(suite.TESTS).glob("test_*.py"))
    dealt = [path for shard in suite.deal(files, 4) for path in shard]
    assert sorted(dealt) == files
    assert all(path.name in suite.SECONDS for path in files), "measure the new files' seconds"
