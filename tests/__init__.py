"""The test suite; `tests.sshhosts` is also the benchmark's fake-host harness."""
