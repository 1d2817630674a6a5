"""Unit tests for engine registration progress (plain output, as when piped)."""

from tasks.show import progress
from tasks.show.progress import EngineProgress, ProgressStream


def test_plain_lines_when_counts_change_and_short_hosts_once_slow(monkeypatch, capsys):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    with EngineProgress({"a": 2, "b": 2}) as shown:
        stream = ProgressStream(shown)
        stream.write('noise\nprogress={"a": 1}\nprogress={"a": 1}\n')
        clock[0] += 6
        stream.write('progress={"a": 2, "b": 1')
        stream.write('}\nprobe={}\n')
    assert capsys.readouterr().out.splitlines() == [
        "engines registered: 1/4",
        "engines registered: 3/4; waiting for b 1/2",
    ]


def test_at_scale_the_shortest_hosts_are_named_first_and_the_rest_summed():
    expected = {f"node{n}": 50 for n in range(1, 8)}
    counts = {"node1": 50, "node2": 10, "node3": 49, "node4": 0, "node5": 40, "node6": 45, "node7": 48}
    assert progress.short_hosts(expected, counts) == (
        "node4 0/50, node2 10/50, node5 40/50, node6 45/50 and 2 more hosts short of 3 engines")
    assert progress.short_hosts({"a": 2, "b": 2}, {"a": 1}) == "b 0/2, a 1/2"
