"""
install.sh, the README's quick start and test command, run for real in a fresh copy of
the project: as root where there is no sudo (a container), as a plain user with every
package present, with one missing and no sudo, and with one missing and sudo.

Nothing on the system is changed to make a case: each run is in a mount namespace of its
own (``unshare --mount``) where sudo is hidden (/dev/null over it: not found, and a call
fails) and a package looks removed (dpkg's database is a copy that says so). apt-get,
sudo and pip run for real; where a run installs a package, it is the one already there,
same version, same files.
"""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import PROJECT, users

pytestmark = pytest.mark.network  # pip and apt reach their indexes: tests.suite keeps the network

USER = "ippinstall"
COPIED = ("install.sh", "fabfile.py", "tasks", "inventory",
          *sorted(path.name for path in PROJECT.glob("requirements*.txt")))
# The packages install.sh installs: for a user, and with --test.
USER_PACKAGES = ("screen", "python3-venv")
TEST_PACKAGES = USER_PACKAGES + (
    "openssh-server", "iproute2", "nftables", "chromium", "shellcheck", "tcsh", "csh", "zsh", "fish", "ksh",
    "lmod", "slurmctld", "slurmd", "slurm-client", "munge", "sudo")
# As after a login: Debian's python3, not the one running these tests.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What this machine's pip and apt need to reach their indexes, if anything.
PASSED = [f"{name}={value}" for name, value in os.environ.items()
          if name.lower().endswith("_proxy") or name.startswith("PIP_")]
NEXT = "install.sh: done; next: . .venv/bin/activate && fab cluster.up\n"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="run as root: it makes users, namespaces and sudo rules")


def installed(package):
    """Whether dpkg says *package* is installed, here."""
    status = subprocess.run(["dpkg-query", "-W", "--showformat=${Status}", package], capture_output=True, text=True)
    return status.stdout == "install ok installed"


def needs_installed(*packages):
    missing = [package for package in packages if not installed(package)]
    if missing:
        pytest.skip(f"needs {' '.join(missing)} installed (the README's test command installs them)")


@contextmanager
def project_copy(user=None):
    """A fresh copy of what install.sh needs, in *user*'s home (owned by the user) or, for
    root, in a temporary folder; removed after."""
    folder = Path(tempfile.mkdtemp(prefix="ipp-install-", dir=pwd.getpwnam(user).pw_dir if user else None))
    try:
        project = folder / "project"
        project.mkdir()
        for name in COPIED:
            if (PROJECT / name).is_dir():
                shutil.copytree(PROJECT / name, project / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(PROJECT / name, project)
        if user:
            subprocess.run(["chown", "-R", user, str(folder)], check=True)
        yield project
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_user(user):
    """The command prefix that runs a command as *user* (root: None) with a login's environment."""
    home = pwd.getpwnam(user or "root").pw_dir
    prefix = ["runuser", "-u", user, "--"] if user else []
    return [*prefix, "env", "-i", f"HOME={home}", f"PATH={PATH}", "LANG=C.UTF-8", *PASSED]


def dpkg_without(package, folder):
    """A copy of dpkg's database (in *folder*) in which *package* is removed, its
    configuration files kept: dpkg-query and apt see it missing; apt records there."""
    copy = os.path.join(folder, "dpkg")
    subprocess.run(["cp", "-a", "/var/lib/dpkg", copy], check=True)
    status = Path(copy, "status")
    text, count = re.subn(rf"(?m)^(Package: {re.escape(package)}\n(?:.+\n)*?Status: )install ok installed$",
                          r"\1deinstall ok config-files", status.read_text())
    assert count == 1, f"{package} is not installed once in /var/lib/dpkg/status"
    status.write_text(text)
    return copy


def install(project, *args, user=None, hide_sudo=True, missing=None):
    """
    ``sh install.sh ARGS`` in *project* as *user* (None: root), in a mount namespace where
    sudo is hidden (*hide_sudo*) and the package *missing* looks removed, with apt's
    downloads in a folder of its own; returns the CompletedProcess.
    """
    with tempfile.TemporaryDirectory(prefix="ipp-install-ns-") as scratch:
        mounts = []
        if hide_sudo:
            sudos = {os.path.realpath(os.path.join(d, "sudo")) for d in PATH.split(":")}
            mounts += [("/dev/null", path) for path in sorted(sudos) if os.path.exists(path)]
        if missing:
            cache = os.path.join(scratch, "apt-cache")
            os.makedirs(os.path.join(cache, "archives", "partial"))
            os.chmod(cache, 0o755)  # apt downloads as its user _apt
            mounts += [(dpkg_without(missing, scratch), "/var/lib/dpkg"), (cache, "/var/cache/apt")]
        script = "".join(f"mount --bind {shlex.quote(a)} {shlex.quote(b)}\n" for a, b in mounts) + 'exec "$@"'
        return subprocess.run(["unshare", "--mount", "sh", "-ec", script, "sh", *as_user(user),
                               "sh", "install.sh", *args],
                              cwd=project, capture_output=True, text=True, timeout=1200,
                              stdin=subprocess.DEVNULL)


def assert_fab_lists_its_tasks(project, user=None):
    """The copy's own .venv runs `fab --list`, as after `. .venv/bin/activate`."""
    result = subprocess.run([*as_user(user), str(project / ".venv" / "bin" / "fab"), "--list"],
                            cwd=project, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ +cluster\.up ", result.stdout, re.M), result.stdout


def test_install_sh_is_clean_for_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.fail("shellcheck is missing: the README's test command installs it")
    result = subprocess.run([shellcheck, str(PROJECT / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args", [["--tests"], ["-y"], ["--test", "--test"], [""]])
def test_a_wrong_option_prints_the_usage_and_does_nothing(args):
    with project_copy() as project:
        result = subprocess.run(["sh", "install.sh", *args], cwd=project, capture_output=True, text=True)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", "usage: sh install.sh [--test]\n")
        assert not (project / ".venv").exists()


def test_a_python3_older_than_3_11_is_named_in_one_line_before_any_venv(tmp_path):
    """Ubuntu 22.04's python3 (3.10), first on the PATH: pip would fail on the pinned
    packages, so install.sh stops before it, in one line that names the host and version."""
    needs_installed(*USER_PACKAGES)
    (tmp_path / "python3").write_text("#!/bin/sh\necho 3.10.12\nexit 1\n")
    (tmp_path / "python3").chmod(0o755)
    with project_copy() as project:
        result = subprocess.run(["sh", "install.sh"], cwd=project, capture_output=True, text=True,
                                env=dict(os.environ, PATH=f"{tmp_path}:{PATH}"), stdin=subprocess.DEVNULL)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr == (
            f"install.sh: {os.uname().nodename}: python3 is Python 3.10.12, but the cluster needs 3.11 or"
            " newer: install one (Ubuntu 22.04: apt-get install python3.11-venv) and make it python3 on"
            " the PATH\n")
        assert not (project / ".venv").exists()


def test_a_venv_whose_python_names_no_site_packages_stops_it_in_one_line(tmp_path):
    """.venv's python fails when asked for its site-packages folder (a broken .venv): the
    hook is copied nowhere (before, into / itself, as root in CI), and install.sh says why."""
    needs_installed(*USER_PACKAGES)
    recorder = tmp_path / "bin"
    recorder.mkdir()
    for name in ("cp", "ln"):  # what would put the hook somewhere: recorded, never run
        (recorder / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {tmp_path}/calls\nexit 1\n')
        (recorder / name).chmod(0o755)
    with project_copy() as project:
        (project / ".venv" / "bin").mkdir(parents=True)
        (project / ".venv" / "bin" / "python").write_text(
            "#!/bin/sh\ncase $2 in *sysconfig*) exit 1;; esac\necho 3.11.7\n")  # the version, then fails
        (project / ".venv" / "bin" / "pip").write_text("#!/bin/sh\n")
        for program in ("python", "pip"):
            (project / ".venv" / "bin" / program).chmod(0o755)
        result = subprocess.run(["sh", "install.sh"], cwd=project, capture_output=True, text=True,
                                env=dict(os.environ, PATH=f"{recorder}:{PATH}"), stdin=subprocess.DEVNULL)
        assert not (tmp_path / "calls").exists(), (tmp_path / "calls").read_text()
        assert (result.returncode, result.stderr) == (
            1, "install.sh: .venv/bin/python names no site-packages folder for the ipp_cluster hook:"
               " remove .venv and run install.sh again\n")


@needs_root
@pytest.mark.slow
def test_as_root_without_sudo_apt_get_installs_what_is_missing_and_the_quick_start_runs():
    needs_installed(*USER_PACKAGES)
    before = Path("/usr/bin/screen").read_bytes()
    with project_copy() as project:
        result = install(project, missing="screen")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert "sudo" not in result.stderr
        assert re.search(r"^(Hit|Get):1 ", result.stdout, re.M), result.stdout[:2000]  # apt-get update
        assert "The following NEW packages will be installed:\n  screen\n" in result.stdout, result.stdout
        assert "python3-venv" not in result.stdout  # present: not asked for
        assert result.stdout.endswith(NEXT)
        assert_fab_lists_its_tasks(project)
        # The quick start's second line, in that copy: a local cluster up, then down.
        up = subprocess.run([*as_user(None), "sh", "-c", ". .venv/bin/activate && fab cluster.up"],
                            cwd=project, capture_output=True, text=True, timeout=300)
        down = subprocess.run([*as_user(None), "sh", "-c", ". .venv/bin/activate && fab cluster.down"],
                              cwd=project, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Jupyter: http://127.0.0.1:8888/?token=" in up.stdout
        assert down.returncode == 0, down.stdout + down.stderr
    assert installed("screen") and Path("/usr/bin/screen").read_bytes() == before


@needs_root
@pytest.mark.slow
def test_as_a_plain_user_with_the_packages_present_no_apt_no_sudo_and_the_venv_works():
    needs_installed(*USER_PACKAGES)
    with users(USER), project_copy(USER) as project:
        result = install(project, user=USER)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert result.stdout.startswith("install.sh: the system packages are present: screen python3-venv\n")
        assert "Reading package lists" not in result.stdout and "sudo" not in result.stderr
        assert result.stdout.endswith(NEXT)
        assert_fab_lists_its_tasks(project, USER)
        # .venv serves as CLUSTER_ENV here: its Pythons give ipp.Client() a lasting routing id,
        # with the project's own ipp_cluster.py (a link: never a copy left from before).
        hooked = subprocess.run([*as_user(USER), str(project / ".venv" / "bin" / "python"), "-c",
                                 "import os, ipyparallel as ipp; init = ipp.Client.__init__;"
                                 " print(init.ipp_cluster, os.path.realpath(init.__globals__['__file__']))"],
                                cwd=project, capture_output=True, text=True, timeout=120)
        assert hooked.stdout == f"True {project}/tasks/remote/jupyter/ipp_cluster.py\n", hooked.stderr


@needs_root
@pytest.mark.parametrize("args, package", [([], "screen"), (["--test"], "shellcheck")])
def test_as_a_plain_user_with_a_package_missing_and_no_sudo_it_says_what_root_must_run(args, package):
    needs_installed(package)
    packages = TEST_PACKAGES if args else USER_PACKAGES
    missing = " ".join(p for p in packages if p == package or not installed(p))
    with users(USER), project_copy(USER) as project:
        result = install(project, *args, user=USER, missing=package)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"install.sh: missing system packages: {missing}, and no sudo to install them\n"
            "as root, run:\n"
            f"  apt-get update && apt-get install -y {missing}\n"
            "then run this script again.\n")
        assert not (project / ".venv").exists()


@needs_root
def test_as_a_plain_user_whom_sudo_refuses_it_says_what_root_must_run():
    if not shutil.which("sudo"):
        pytest.skip("needs sudo (the README's test command installs it)")
    needs_installed("screen")
    with users(USER), project_copy(USER) as project:  # no sudoers rule: sudo asks, nobody answers
        result = install(project, user=USER, hide_sudo=False, missing="screen")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "install.sh: sudo apt-get update failed (above)\nas root, run:\n" \
               "  apt-get update && apt-get install -y screen\n" in result.stderr, result.stderr
        assert not (project / ".venv").exists()


@needs_root
@pytest.mark.slow
def test_as_a_plain_user_with_sudo_apt_get_installs_the_missing_package_and_the_venv_works():
    if not shutil.which("sudo"):
        pytest.skip("needs sudo (the README's test command installs it)")
    needs_installed("screen", "python3-venv")
    before = Path("/usr/bin/screen").read_bytes()
    rule = Path(f"/etc/sudoers.d/{USER}")
    with users(USER), project_copy(USER) as project:
        try:
            rule.write_text(f"{USER} ALL=(root) NOPASSWD: ALL\n")
            rule.chmod(0o440)
            result = install(project, user=USER, hide_sudo=False, missing="screen")
        finally:
            rule.unlink(missing_ok=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        # sudo apt-get update, then sudo apt-get install -y with the missing package only.
        assert re.search(r"^(Hit|Get):1 ", result.stdout, re.M), result.stdout[:2000]
        assert "The following NEW packages will be installed:\n  screen\n" in result.stdout, result.stdout
        assert re.search(r"^Setting up screen ", result.stdout, re.M), result.stdout
        assert "python3-venv" not in result.stdout
        assert result.stdout.endswith(NEXT)
        assert_fab_lists_its_tasks(project, USER)
    # The system is as it was: screen installed (dpkg's own database), the same program.
    assert installed("screen") and Path("/usr/bin/screen").read_bytes() == before
