"""
The controller's ports drawn from ``CONTROLLER_PORTS`` alone (``--IPController.ports``, the
pool that ``start_master.sh`` passes: the range less Jupyter's port).

ipyparallel's ``IPController.next_port`` takes the pool's ports in order, whether another
program holds one or not (the controller then fails to bind it), and once the pool is spent
it draws random ports, outside the range a site's firewall opens. `install` wraps it: a port
that something listens on here, or that the controller's connection files already name (a
``--restore`` reads them back and draws only its inner ports again), is passed over; and
when the pool has no port left the controller fails with a line that says so, rather than
listen where the engines cannot reach it. Without a pool, it does as ipyparallel does.
"""

import socket


def free(port):
    """Whether nothing listens on TCP *port* here, on any address (a test bind, at once undone;
    with SO_REUSEADDR, as ZeroMQ binds, so that a port a stopped controller left in TIME_WAIT
    counts as free)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def named(controller):
    """The ports that *controller*'s connection dicts already hold."""
    found = set()
    for info in (controller.engine_info, controller.client_info,
                 getattr(controller, "internal_info", None) or {}):
        for value in info.values():
            values = value.values() if isinstance(value, dict) else \
                value if isinstance(value, list) else [value]
            found.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    return found


def install(controller_class):
    """Make *controller_class* draw its ports as the module says; False where this
    ipyparallel has no ``next_port`` (its pool is then used as ipyparallel uses it)."""
    next_port = getattr(controller_class, "next_port", None)
    if next_port is None:
        return False

    def next_free_port(self, pool_name="common"):
        pool = set(self.ports) | set(self.engine_ports) | set(self.client_ports)
        if not pool:
            return next_port(self, pool_name)
        taken = named(self)
        for _ in range(len(pool) + 1):
            port = next_port(self, pool_name)
            if port not in pool:  # a random port: the pool is spent
                break
            if port not in taken and free(port):
                return port
            self.log.warning(f"CONTROLLER_PORTS: port {port} is taken, the next one is tried")
        raise RuntimeError(f"CONTROLLER_PORTS: no free port left of the {len(pool)} of its pool:"
                           " widen the range in cluster.env, or free its ports on the master")

    controller_class.next_port = next_free_port
    return True
