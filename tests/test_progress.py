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
