"""Unit tests for the install command and the cluster's pinned requirements."""

from tasks import environment
from tasks.inventory import Settings

SETTINGS = Settings(cluster_env="/opt/cluster env")


def test_requirements_are_pinned_exactly():
    lines = environment.requirements().splitlines()
    assert lines and all("==" in line for line in lines)
    assert any(line.startswith("ipyparallel==") for line in lines)


def test_install_from_an_index_creates_the_env_only_if_missing():
    script = environment.install(SETTINGS, "a==1", python="/usr/bin/python3.11")
    assert "env='/opt/cluster env'" in script
    assert 'if [ -x "$env/bin/python" ]; then echo created=no; else' in script
    assert '/usr/bin/python3.11 -m venv "$env"' in script
    assert '-q -r "$reqs"' in script and "--no-index" not in script
    assert script.index("flock 8") < script.index("-m venv")


def test_install_from_a_wheelhouse_uses_no_index():
    script = environment.install(SETTINGS, "a==1", archive=".ipp-wheels.tar.gz")
    assert 'tar -xzf "$HOME"/.ipp-wheels.tar.gz -C "$work"' in script
    assert '--no-index --find-links "$work" -r "$reqs"' in script
    assert "trap 'rm -rf \"$work\"' EXIT" in script
