"""
Where the controller and Jupyter run when an allocation of the inventory says
``slurm_master=yes``: on the first node of its running job, which SSH reaches through the
login node (the inventory's master, where Slurm's commands run). One ``squeue`` there says
which node, each time a task needs to know.
"""

from dataclasses import replace

from ...inventory.folder import Host
from .allocations import read_jobs


def master_in_job(fleet, inventory):
    """
    ``(inventory, problem)``: with an allocation of ``slurm_master=yes``, *inventory* with
    the first node of that allocation's running job as its master (reached through the login
    node, which stays its ``login``: where Slurm's commands run); *problem* says why it
    cannot be, with what to do. Any other inventory is returned as it is.
    """
    allocation = inventory.master_allocation
    if allocation is None or inventory.login is not None:
        return inventory, None
    job = read_jobs(fleet, inventory, [allocation])[allocation.name]
    if isinstance(job, str):
        return inventory, f"{allocation.name}: {job}"
    if job is None or job.state != "RUNNING" or not job.batch:
        why = "no job" if job is None else f"job {job.id} is {job.state}, not running"
        return inventory, (f"{allocation.name}: {why}: the controller and Jupyter run in it "
                           "(slurm_master=yes); fab cluster.up starts it")
    login = inventory.master
    node = Host(name=job.batch, hostname=job.batch_address, user=login.user, key=login.key,
                setup=allocation.setup, via=login)
    return replace(inventory, master=node, login=login), None
