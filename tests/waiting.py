"""
`wait_until`: the one way the tests wait for an event, instead of a fixed sleep or a
hand-written deadline loop (a sleep that stands for an event is a flake under load).
"""

import time


def wait_until(predicate, timeout, what, interval=0.1):
    """
    Call *predicate* until it returns a true value, and return that value; fail the test
    (AssertionError) after *timeout* seconds, saying *what* was awaited and the last value
    seen (or the last exception *predicate* raised, which it may raise while it waits).
    """
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            value = predicate()
        except Exception as error:  # noqa: BLE001 -- not there yet: said if it stays so
            value, last = None, error
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout} s, still waiting for {what}; last seen: {last!r}")
        time.sleep(interval)
