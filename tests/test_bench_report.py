"""The benchmark's tables and goals, from made-up timings (the benchmark itself is not a test)."""

from bench.methods import Layout
from bench.report import (
    FLOOR,
    cell,
    control_table,
    floor_table,
    goals,
    plot,
    startup_table,
    threads_line,
)

LAYOUTS = [Layout("m", ("a",), 2), Layout("m", ("a", "b"), 2)]


def times(fab_up, ssh_up, floor_up, fab_down, ssh_down):
    found = {}
    for layout in LAYOUTS:
        for method, up, down in (("fab", fab_up, fab_down), ("ipcluster-ssh", ssh_up, ssh_down),
                                 ("floor", floor_up, [1.0])):
            found[method, "up", layout.label] = up
            found[method, "down", layout.label] = down
    return found


def test_a_cell_is_the_median_then_min_max():
    assert cell([3.0, 1.0, 2.0]) == "2.00 s (1.00-3.00)"
    assert cell([1.5]) == "1.50 s"


def test_startup_table_has_a_row_per_layout_with_ratios():
    table = startup_table(times([4.0], [10.0], [4.0], [1.0], [10.0]), LAYOUTS).splitlines()
    assert table[0].startswith("| hosts x engines | fab cluster.up | ipcluster-ssh up |")
    assert table[2:] == [
        f"| {label} | 4.00 s | 10.00 s | 4.00 s | 0.40 | 1.00 | 1.00 s | 10.00 s | 0.10 |"
        for label in ("1 x 2", "2 x 2")]


def test_goals_say_which_hold():
    control = {("cluster.status", 64): [2.5], ("cluster.run true", 64): [2.1], (FLOOR, 64): [2.0]}
    rows = goals(times([4.0], [10.0], [6.0], [1.0], [1.5]), LAYOUTS, control, [1, 64],
                 [0.3]).splitlines()[2:]
    assert rows == [
        "| cluster.up <= 0.6 x ipcluster-ssh | 0.40 | yes |",
        "| cluster.up <= 1.25 x floor | 0.67 | yes |",
        "| cluster.down <= 0.5 x ipcluster-ssh stop | 0.67 | NO |",
        "| cluster.status on 64 hosts <= 1.1 x its floor | 1.25 | NO |",
        "| cluster.run true on 64 hosts <= 1.1 x its floor | 1.05 | yes |",
        "| fab -l < 0.5 s | 0.30 | yes |",
    ]


def test_the_control_path_is_shown_as_a_multiple_of_its_floor():
    control = {("cluster.status", 8): [3.0], ("cluster.run true", 8): [2.0], (FLOOR, 8): [2.0],
               ("cluster.status", 64): [8.0], ("cluster.run true", 64): [7.0], (FLOOR, 64): [7.0]}
    assert floor_table(control, [8, 64]).splitlines() == [
        "| task / floor | 8 hosts | 64 hosts |", "|---|---|---|",
        "| cluster.status | 1.50 | 1.14 |", "| cluster.run true | 1.00 | 1.00 |"]
    assert threads_line({64: 150, 256: 152}).endswith(": 150 at 64 hosts, 152 at 256 hosts.")


def test_control_table_keeps_the_tasks_order():
    control = {("b", 1): [1.0], ("b", 8): [2.0], ("a", 1): [1.0], ("a", 8): [1.0]}
    assert control_table(control, [1, 8]).splitlines()[2:] == [
        "| b | 1.00 s | 2.00 s | 2.00 |", "| a | 1.00 s | 1.00 s | 1.00 |"]


def test_plot_writes_a_png(tmp_path):
    plot(times([4.0], [10.0], [4.0], [1.0], [10.0]), LAYOUTS, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_scale_tables_show_memory_cpu_and_the_files_read():
    from bench import files_read, scale
    row = {"registered": 200, "expected": 200, "seconds": 40.0, "ok": True,
           "memory": 40 * 2**20, "cpu": 0.21}
    text = scale.table({"runs": {"fab cluster.up, 4 x 50": [row, dict(row, seconds=44.0)]},
                        "files": {"forked": {4: 1500, 16: 1510}, "processes": {4: 6000, 16: 24000}}})
    assert "| fab cluster.up, 4 x 50 | 200/200, 200/200 | 44 s (40-44) | 40 MiB | 0.21 s |" in text
    assert "| 16 | 1510 | 24000 |" in text
    assert files_read.table("strace is not installed") == (
        "Files read to start engines: not measured (strace is not installed).")


def test_the_slurm_bench_reads_when_the_last_engine_connected_from_the_controllers_log():
    from datetime import datetime

    from bench.slurm import registered_after
    start = datetime(2026, 12, 6, 1, 0, 0).timestamp()
    log = ("2026-12-06 00:59:59.900 [IPController] engine::Engine Connected: 7\n"  # an earlier round's
           "2026-12-06 01:00:02.250 [IPController] engine::Engine Connected: 0\n"
           "2026-12-06 01:00:01.500 [IPController] registration::finished registering engine 1\n"
           "2026-12-06 01:00:03.125 [IPController] engine::Engine Connected: 1\n")
    assert registered_after(log, start, count=2) == 3.125
    assert registered_after(log, start, count=3) is None
