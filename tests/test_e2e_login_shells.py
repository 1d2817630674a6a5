"""
End to end: a cluster run by users of every common login shell, each with rc files
that print a banner. What reaches the login shell is one short line that every
shell reads alike; the programs come on its standard input.
"""

import shutil
import subprocess

import pytest

from tests.conftest import fab, leftovers, users, write_inventory

SHELLS = ["sh", "bash", "zsh", "fish", "tcsh", "csh", "ksh"]
BANNER = "Welcome to the lab cluster: be nice, load=low"
RC_FILES = {  # the file each shell reads for a command over SSH, and some it reads on login
    ".profile": f'echo "{BANNER} (profile)"\n',
    ".bashrc": f'echo "{BANNER} (bashrc)"\n',
    ".zshenv": f'echo "{BANNER} (zshenv)"\n',
    ".kshrc": f'echo "{BANNER} (kshrc)"\n',
    ".cshrc": f'echo "{BANNER} (cshrc)"\n',
    ".tcshrc": f'echo "{BANNER} (tcshrc)"\n',
    ".config/fish/config.fish": f'echo "{BANNER} (fish)"\n',
}
#: The banner each shell prints on login (``su -``): of the rc file it reads then; and for a
#: command over SSH, as fab's reach it (sh and ksh read no file then).
LOGIN_BANNER = {"sh": "profile", "bash": "profile", "zsh": "zshenv", "fish": "fish", "tcsh": "tcshrc",
                "csh": "cshrc", "ksh": "profile"}
SSH_BANNER = {"sh": None, "bash": "bashrc", "zsh": "zshenv", "fish": "fish", "tcsh": "tcshrc",
              "csh": "cshrc", "ksh": None}


@pytest.mark.parametrize("shell", SHELLS)
def test_a_user_of_each_login_shell_runs_a_whole_cluster(fake_hosts, shared_env, tmp_path, shell):
    path = "/bin/sh" if shell == "sh" else shutil.which(shell)
    if not path:
        pytest.skip(f"{shell} is not installed")
    user = f"ipp{shell}"
    number = SHELLS.index(shell)
    hosts = f"[master]\n{user}@127.0.2.1\n[engines]\n{user}@127.0.2.2 engines=1\n{user}@127.0.2.3 engines=1\n"
    inventory = write_inventory(tmp_path / "inv", hosts, CLUSTER_ENV=shared_env, CLUSTER_NAME=user,
                                IPP_PROFILE=user, JUPYTER_PORT=18880 + number,
                                SHARED_HOME="no" if shell == "tcsh" else "yes",
                                KNOWN_HOSTS=fake_hosts.known_hosts)

    def run(*args):
        return fab(*args, inventory=inventory, key=fake_hosts.client_key)
    with users(user, shell=path):
        home = fake_hosts.hosts[0].run(f"getent passwd {user} | cut -d: -f6").strip()
        for name, text in RC_FILES.items():
            fake_hosts.hosts[0].run(f"mkdir -p $(dirname {home}/{name}) && printf '%s' '{text}' > {home}/{name}"
                                    f" && chown -R {user} {home}")
        banner = fake_hosts.hosts[1].run(f"su - {user} -c true 2>&1 || true")
        over_ssh = subprocess.run(["ssh", "-i", str(fake_hosts.client_key), "-o", "BatchMode=yes",
                                   "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                   "-o", "LogLevel=ERROR", f"{user}@127.0.2.2", "true"],
                                  capture_output=True, text=True, timeout=60)
        try:
            up = run("cluster.up")
            assert up.returncode == 0, up.stdout + up.stderr
            assert "engines registered: 2/2" in up.stdout
            status = run("cluster.status")
            assert status.returncode == 0, status.stdout + status.stderr
            assert status.stdout.count("1/1") == 2
            said = run("cluster.run", 'echo "hi from $(hostname) in $0"')
            assert said.returncode == 0, said.stdout + said.stderr
            for number in (1, 2, 3):
                assert f"hi from host{number} in sh" in said.stdout
            logs = run("cluster.logs", "--role=engines", "--lines=50")
            assert logs.returncode == 0 and logs.stdout.count(f"=== {user}-engine-1") == 2, logs.stdout
            restart = run("engines.restart")
            assert restart.returncode == 0, restart.stdout + restart.stderr
        finally:
            down = run("cluster.down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(fake_hosts, (1, 2, 3)) == {}
    assert f"{BANNER} ({LOGIN_BANNER[shell]})" in banner, banner  # the rc files do print on login
    assert over_ssh.returncode == 0, over_ssh.stderr
    assert over_ssh.stdout == (f"{BANNER} ({SSH_BANNER[shell]})\n" if SSH_BANNER[shell] else ""), over_ssh
