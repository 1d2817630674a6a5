"""
Without a shared home, the controller's connection file (which holds the key that signs
every message) reaches the nodes of a running job over SSH, through the login node, as the
controller's node is reached with ``slurm_master=yes`` (`tasks.steps.slurm.master_job`): never in
the job script, which Slurm keeps and shows to its administrators. Each node's job step
(``slurm_node``) starts its engines once it is there (`tasks.commands.slurm.keyed`).
"""

from ... import commands
from ...commands import slurm
from ...inventory.folder import Host
from ..registration import SLACK


def bring_key(fleet, inventory, jobs, engine_file):
    """
    Write *engine_file* (the controller's connection file) on every node of *jobs*
    (``{allocation name: its running slurm.Job}``), with the mark of each job there: one SSH
    session per node, all at once. Returns ``group: NODE@JOB: reason`` lines for the nodes
    it could not bring it to.
    """
    login, nodes = inventory.slurm_host, {}
    for name, job in jobs.items():
        for node in job.cpus:
            nodes.setdefault(node, (job.addresses.get(node, node), []))[1].append(
                (name, slurm.label(node, job)))
    scripts = {node: commands.script(inventory.settings, commands.write_engine_file(engine_file),
                                     slurm.keyed([label for _, label in labels]))
               for node, (_, labels) in nodes.items()}
    results = fleet.run({Host(name=node, hostname=address, user=login.user, key=login.key, via=login):
                         scripts[node] for node, (address, _) in nodes.items()}, SLACK)
    return [f"{name}: {label}: cannot bring the controller's connection file over SSH through "
            f"{login.name}: {results[node].reason or results[node].stderr.strip()}"
            for node, (_, labels) in nodes.items() if not results[node].ok for name, label in labels]
