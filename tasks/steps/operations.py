"""
The steps of operating a cluster: run a user's command, read the logs, install the
cluster's environment. Like `tasks.steps.lifecycle`, each is one parallel round trip that
returns per-host results; none prints.
"""

import re

from .. import commands
from . import environment
from .registration import SLACK

#: Seconds that creating and filling CLUSTER_ENV may take on a host.
INSTALL_TIMEOUT = 1800


def run_command(fleet, inventory, hosts, command):
    """Run the user's *command* with ``sh`` on *hosts*, with no time limit."""
    step = commands.user_command(command)
    return fleet.run({host: commands.script(inventory.settings, step, setup=host.setup)
                      for host in hosts}, None)


def read_logs(fleet, inventory, hosts, role, lines):
    """The last *lines* of the logs of *role* (None: every role) on each of *hosts*."""
    scripts = {}
    for host in hosts:
        roles = []
        if host == inventory.master and role != "engines":
            roles += ["controller", "jupyter"]
        if host in inventory.engines and role != "master":
            roles.append("engine")
        scripts[host] = commands.script(inventory.settings, commands.tail_logs(roles, lines),
                                        setup=host.setup)
    return fleet.run(scripts, SLACK)


def install(fleet, inventory, python, archive=None):
    """
    Create CLUSTER_ENV where it is missing and install the pinned packages, on every host.

    With *archive* (a tar.gz of wheels made by `tasks.steps.environment.pack`), it is first
    uploaded to each host and pip installs from it with no index.

    :returns: the results of the uploads (empty without *archive*) and of the installs.
    """
    hosts, uploads, put = inventory.hosts, {}, {}
    if archive:
        uploads = {h: (archive, f".ipp-cluster-wheels-{re.sub(r'[^A-Za-z0-9]', '_', h.name)}.tar.gz")
                   for h in hosts}
        put = fleet.put(uploads)
        hosts = [h for h in hosts if put[h.name].ok]
    pinned = environment.requirements()
    settings = inventory.settings
    scripts = {h: commands.script(settings, environment.install(
        settings, pinned, python, uploads[h][1] if archive else None), setup=h.setup) for h in hosts}
    return put, fleet.run(scripts, INSTALL_TIMEOUT)


def read_client_file(fleet, inventory):
    """The master's `HostResult`; its ``client_file`` fact is the client connection file, base64."""
    script = commands.script(inventory.settings, commands.read_client_file(),
                             setup=inventory.master.setup)
    return fleet.run({inventory.master: script}, SLACK)[inventory.master.name]
