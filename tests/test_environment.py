"""Unit tests for the cluster's pinned requirements (the install step: tests/test_commands.py)."""

from tasks.steps import environment


def test_requirements_are_pinned_exactly():
    lines = environment.requirements().splitlines()
    assert lines and all("==" in line for line in lines)
    assert any(line.startswith("ipyparallel==") for line in lines)
