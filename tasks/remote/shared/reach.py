"""
Whether this host reaches the controller's ports, for ``cluster.check``: a short TCP connect
to each, all at once, before any engine waits in vain for its registration.

Run as ``python - MODE ARGS`` with this file on stdin (as ``versions.py`` is), in one of two
modes:

- ``ports ENGINE_FILE``, on the master (``controller_ports`` in
  ``steps/master/read_engine_file.sh``): prints ``controller_ports=ADDRESS PORT...``, the
  address and every port the engines connect to, read from the controller's engine
  connection file (its key stays there);
- ``connect ADDRESS TIMEOUT PORT...``, on each engine host (``reach`` in
  ``steps/any/facts.sh``): prints ``reached=`` (how many answered) and ``unreachable=``,
  ``ADDRESS:PORT/WHY`` for each that did not (``timeout``: no answer in TIMEOUT s, as behind
  a firewall that drops; ``refused``: a reset, from a firewall that rejects or a port that
  nothing listens on; else the error's name).
"""

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def engine_ports(info):
    """``(address, [port, ...])`` that the engines of the engine connection file *info* (a
    dict) connect to: its interface's address (its ``location`` for a wildcard one) and each
    whole number of it, or list of them (the registration, the schedulers, the heartbeat,
    the host inbox, ...), in order."""
    address = str(info.get("interface", "")).rpartition("://")[2]
    if address in ("", "*", "0.0.0.0"):
        address = str(info.get("location", ""))
    ports = []
    for value in info.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and not isinstance(item, bool) and item not in ports:
                ports.append(item)
    return address, ports


def attempt(address, port, timeout):
    """``None`` when a TCP connection to *address*:*port* opens in *timeout* s, else why not."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return None
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as error:
        return type(error).__name__


def main(argv):
    if argv[1:2] == ["ports"]:
        with open(argv[2]) as file:
            address, ports = engine_ports(json.load(file))
        print("controller_ports=" + " ".join([address, *map(str, ports)]))
        return 0
    address, timeout, ports = argv[2], float(argv[3]), [int(port) for port in argv[4:]]
    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        why = list(pool.map(lambda port: attempt(address, port, timeout), ports))
    print(f"reached={why.count(None)}")
    print("unreachable=" + " ".join(f"{address}:{port}/{reason}"
                                    for port, reason in zip(ports, why) if reason))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
