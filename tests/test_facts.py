"""Unit tests for reading what the commands report."""

from tasks.commands.answers import parse_facts, parse_probe, session_names


def test_key_value_lines_are_read_and_other_lines_ignored():
    facts = parse_facts("expected=4\nnoise: x=1\nstarted=2\nstarted=3\n")
    assert facts == {"expected": "4", "started": "3"}


def test_probe_report_and_sessions():
    facts = parse_facts('probe={"controller": true, "engines": {"n1": 2}, "jupyter": false, '
                        '"error": ""}\nsessions=ipp-controller ipp-engines \n')
    assert parse_probe(facts)["engines"] == {"n1": 2}
    assert parse_probe({}) is None
    assert session_names(facts) == ["ipp-controller", "ipp-engines"]
