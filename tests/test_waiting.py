"""The tests' one way to wait (`tests.waiting.wait_until`)."""

import itertools

import pytest

from tests.waiting import wait_until


def test_returns_the_first_true_value():
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", 5, "three calls", interval=0) == "ready"


def test_fails_naming_what_it_waited_for_and_the_last_value():
    with pytest.raises(AssertionError, match=r"still waiting for the answer; last seen: \[\]"):
        wait_until(lambda: [], 0.2, "the answer", interval=0.05)


def test_a_predicate_that_raises_is_waited_on_and_its_error_said():
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        wait_until(lambda: 1 / 0, 0.2, "a division", interval=0.05)
