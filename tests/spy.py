"""
`spy`: another user's listener on a loopback port, which records every byte it receives:
the attacker of the tests of who may get Jupyter's token (tests/test_probe.py,
tests/test_loopback.py, tests/test_e2e_jupyter_token.py). Needs root (it runs as that user).
"""

import pwd
import subprocess
from contextlib import contextmanager

from tests.conftest import SYSTEM_PYTHON
from tests.waiting import wait_until

#: The listener, run as the other user: accepts every connection, answers nothing, and
#: writes what each one sends to its stdout, after one line saying it listens.
LISTENER = """
import socket, sys, threading
family, host = (socket.AF_INET6, "::") if sys.argv[2] == "any6" else (socket.AF_INET, "127.0.0.1")
server = socket.create_server((host, int(sys.argv[1])), family=family, dualstack_ipv6=family == socket.AF_INET6)
print("listening", flush=True)

def take(connection):
    with connection:
        while data := connection.recv(65536):
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

while True:
    threading.Thread(target=take, args=(server.accept()[0],), daemon=True).start()
"""


class Spy:
    """The running listener: `heard` is what it received so far (bytes)."""

    def __init__(self, record):
        self.record = record

    def heard(self):
        return self.record.read_bytes().removeprefix(b"listening\n")


@contextmanager
def spy(user, port, folder, where="loopback"):
    """*user*'s listener on 127.0.0.1:*port* (*where* ``any6``: on ``[::]``, which takes IPv4
    too), recording into *folder*; ended when the block ends."""
    account = pwd.getpwnam(user)
    record = folder / f"heard-{user}-{port}"
    with open(record, "wb") as out:
        process = subprocess.Popen(
            ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups",
             SYSTEM_PYTHON, "-c", LISTENER, str(port), where],
            stdout=out, stderr=subprocess.STDOUT, cwd="/")
    try:
        wait_until(lambda: record.read_bytes().startswith(b"listening\n") or process.poll() is not None,
                   30, f"{user}'s listener on port {port}")
        assert process.poll() is None, record.read_text()
        yield Spy(record)
    finally:
        process.kill()
        process.wait()
