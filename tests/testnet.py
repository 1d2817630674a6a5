"""
A network of its own for fake hosts: each host, and "the laptop" that runs ``fab``,
in a network namespace with its own loopback, joined by a bridge that lives in one
more namespace. Everything is created by `TestNetwork.start` and removed by
`TestNetwork.stop`; no interface of this machine is touched, so no packet of the
tests reaches it.

As on a real cluster seen from a laptop: the laptop reaches only the hosts' SSH port
(every other port of a host resets the laptop's connections: a firewall rule in the
host's namespace), while the hosts reach one another on every port. A host's own
``127.0.0.1`` is its own. Both IPv4 and IPv6 are filtered: each node has one address of
each (no IPv6 link-local address, which would escape the rule). Needs root, ``ip`` (iproute2) and ``nft`` (nftables).
"""

import shutil
import subprocess
import sys

#: The private subnets of the test network: host N is .N (::N), the laptop is .100 (::100).
SUBNET, SUBNET6 = "10.231.0", "fd31:231::"
LAPTOP = "laptop"

#: The laptop may open only SSH connections to a host; anything else is reset.
FIREWALL = """\
table inet ipptest {{
  chain input {{
    type filter hook input priority 0; policy accept;
    ip saddr {laptop} tcp dport != 22 reject with tcp reset
    ip6 saddr {laptop6} tcp dport != 22 reject with tcp reset
  }}
}}
"""

#: Connects to ADDRESS PORT (IPv4 or IPv6) and prints what happened: open, refused or timeout.
CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError as error:
    print(type(error).__name__)
"""


def why_not_available():
    """The reason a test network cannot be made here, or None when it can."""
    for program in ("ip", "nft"):
        if not shutil.which(program):
            return f"missing {program}: install iproute2 and nftables"
    return None


class TestNetwork:
    """The laptop and hosts ``host1`` .. ``hostN`` on ``SUBNET``.0/24, each in its own namespace."""

    def __init__(self, hosts, prefix):
        self.prefix = prefix
        self.numbers = {LAPTOP: 100, **{f"host{n}": n for n in range(1, hosts + 1)}}

    def namespace(self, node):
        """The name of *node*'s network namespace (``ip netns``)."""
        return f"{self.prefix}-{node}"

    def address(self, node):
        """*node*'s address on the test network."""
        return f"{SUBNET}.{self.numbers[node]}"

    def address6(self, node):
        """*node*'s IPv6 address on the test network (its only one: no link-local address)."""
        return f"{SUBNET6}{self.numbers[node]}"

    def start(self):
        switch = self.namespace("switch")
        self._ip("netns", "add", switch)
        self._ip("-n", switch, "link", "add", "br0", "type", "bridge")
        self._ip("-n", switch, "link", "set", "br0", "up")
        for node, number in self.numbers.items():
            namespace = self.namespace(node)
            self._ip("netns", "add", namespace)
            self._ip("-n", switch, "link", "add", f"port{number}", "type", "veth",
                     "peer", "name", "eth0", "netns", namespace)
            self._ip("-n", switch, "link", "set", f"port{number}", "master", "br0", "up")
            self._ip("-n", namespace, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
            self._ip("-n", namespace, "link", "set", "eth0", "addrgenmode", "none")
            self._ip("-n", namespace, "addr", "add", f"{self.address6(node)}/64", "dev", "eth0",
                     "nodad")
            self._ip("-n", namespace, "link", "set", "eth0", "up")
            self._ip("-n", namespace, "link", "set", "lo", "up")
            if node != LAPTOP:
                subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], check=True,
                               input=FIREWALL.format(laptop=self.address(LAPTOP),
                                                     laptop6=self.address6(LAPTOP)), text=True)
        return self

    def stop(self):
        """Remove every namespace (their interfaces and the bridge go with them)."""
        for node in [*self.numbers, "switch"]:
            subprocess.run(["ip", "netns", "del", self.namespace(node)], stderr=subprocess.DEVNULL)

    def add_address(self, node, address):
        """Give *node* one more IPv4 *address* (``A.B.C.D/N``) on its link, as a host on two
        networks has (nothing routes between them: only nodes given one of it reach it)."""
        self._ip("-n", self.namespace(node), "addr", "add", address, "dev", "eth0")

    def nft(self, node, rules):
        """Load the nftables *rules* (``nft -f`` text: a table, or ``delete table ...``) into
        *node*'s namespace, beside the laptop's rule (a packet any table drops is dropped)."""
        self.run(node, "nft", "-f", "-", input=rules, text=True, check=True)

    def run(self, node, *argv, **kwargs):
        """Run *argv* in *node*'s network namespace (nothing else of it changes)."""
        return subprocess.run(["ip", "netns", "exec", self.namespace(node), *argv], **kwargs)

    def connect(self, node, address, port):
        """Try a TCP connection from *node*: ``open``, ``refused`` or the error's name."""
        out = self.run(node, sys.executable, "-c", CONNECT, address, str(port),
                       capture_output=True, text=True, check=True)
        return out.stdout.strip()

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip", *args], check=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
