"""
The tests that need no root, run again as a plain user, as most users run ``fab``.

As root, this makes a user, a virtual environment of Debian's Python with what the
tests need (``requirements-test.txt``, as the README's command installs it), and a copy of the project that the
user owns; then runs the suite there as that user, less what cannot differ for a user
(`SAME_FOR_ANY_USER`) and the end-to-end tests, which skip themselves without root (but
the local cluster's). The tests that need root skip themselves; the unit tests and the
local cluster must pass.
"""

import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import PROJECT, SYSTEM_PYTHON, users

pytestmark = pytest.mark.network  # pip and apt reach their indexes: tests.suite keeps the network

USER = "ippplain"
#: Tests of text in, text out, or of the documentation and the benchmark's report: they read
#: no file of a home, start nothing and run as root (the README's command) all the same.
SAME_FOR_ANY_USER = ("test_address.py", "test_ansible_inventory.py", "test_bench_report.py", "test_checks.py",
                     "test_docs.py", "test_docs_json.py", "test_documents.py", "test_facts.py",
                     "test_progress.py", "test_report.py", "test_version.py", "test_waiting.py")
COPIED = ("fabfile.py", "pytest.ini", "requirements.txt", "tasks", "tests", "inventory", "notebooks",
          "README.md", "CHANGELOG.md", "mkdocs.yml", "docs", "install.sh", "requirements-test.txt",
          "requirements-docs.txt",
          "bench")


@pytest.fixture(scope="module")
def plain_project():
    """A venv and a copy of the project, both usable by USER; removed after."""
    if os.geteuid() != 0:
        pytest.skip("run as root, this runs the suite again as a plain user")
    if subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip"]).returncode != 0:
        pytest.skip("needs Debian's python3 and python3-venv")
    folder = tempfile.mkdtemp(prefix="ipp-plain-")
    os.chmod(folder, 0o755)
    try:
        venv = os.path.join(folder, "venv")
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", venv], check=True)
        subprocess.run([f"{venv}/bin/pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(PROJECT / "requirements-test.txt")], check=True, timeout=900)
        project = os.path.join(folder, "project")
        for name in COPIED:
            source = PROJECT / name
            if source.is_dir():
                shutil.copytree(source, os.path.join(project, name),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                os.makedirs(project, exist_ok=True)
                shutil.copy(source, project)
        with users(USER):
            subprocess.run(["chown", "-R", USER, project], check=True)
            yield venv, project
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_unit_tests_and_the_local_cluster_pass_as_a_plain_user(plain_project):
    venv, project = plain_project
    home = pwd.getpwnam(USER).pw_dir
    # As after the README's `. .venv/bin/activate`: the default inventory runs what is on PATH.
    env = ["env", "-i", f"HOME={home}", f"PATH={venv}/bin:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
           f"CI={os.environ.get('CI', '')}"]
    files = sorted(path.name for path in (PROJECT / "tests").glob("test_*.py")
                   if path.name not in SAME_FOR_ANY_USER
                   and (not path.name.startswith("test_e2e_") or path.name == "test_e2e_local.py"))
    result = subprocess.run(["runuser", "-u", USER, "--", *env, f"{venv}/bin/python", "-m", "pytest",
                             "-v", "-p", "no:cacheprovider", *(f"tests/{name}" for name in files)],
                            cwd=project, capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1]
    failures = result.stdout.partition("= FAILURES =")[2].partition("short test summary info")[0]
    assert result.returncode == 0, (failures or result.stdout)[-8000:] + result.stderr[-2000:]
    assert "test_e2e_local.py::test_shipped_inventory_brings_a_local_cluster_up_and_down PASSED" in (
        result.stdout)
    assert "test_commands.py::test_engines_are_labelled_counted_restarted_and_stopped_to_the_last_process" \
        " PASSED" in result.stdout
    assert " passed" in summary and "failed" not in summary and "error" not in summary
