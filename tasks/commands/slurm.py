"""
Build what Slurm runs for an allocation (`tasks.inventory.allocations.Allocation`), and read
what Slurm says: pure functions.

- The job script is a program of ``tasks/remote/steps/``: ``lib.sh`` and ``slurm/slurm_job.sh``, then a
  call of ``slurm_job`` (the batch script's loop), whose stdin is the node program: the same
  files, then a call of ``slurm_node`` with the engines' programs (the supervisor's, as on
  an SSH host). Values reach them as quoted arguments, as everywhere
  (`tasks.commands.script`); nothing of the login node's files is needed on the nodes but
  the cluster's Python. It holds no secret: Slurm keeps it, and shows it to its
  administrators. Where the nodes do not share the master's home, the controller's
  connection file comes to them over SSH once the job runs (`keyed`).
- The steps on the master (``slurm/slurm.sh``) submit it, read its state, cancel it, restart its
  engines; each reports ``slurm_INDEX=`` for the INDEX-th allocation of the command.
"""

import json
import re
from dataclasses import dataclass, field

from ..inventory.allocations import seconds
from .script import Step, script
from .shipped import as_base64, package, program

#: Seconds before the time limit at which the engines are told to stop (at most a quarter of
#: the job's time). Slurm's own ``--signal`` comes up to 60 s early (measured on 22.05), so
#: the job script keeps its own clock, from the time left that squeue gives it.
MARGIN = 120

#: Job states that hold nodes, or may: the job is there.
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT")

#: Reasons of a pending job that waiting does not mend: the request exceeds what the
#: partition, the account or the QOS allow, or names what does not exist.
HOPELESS = ("PartitionNodeLimit", "PartitionTimeLimit", "PartitionConfig", "BadConstraints",
            "InvalidAccount", "InvalidQOS", "DependencyNeverSatisfied", "QOSMaxNodePerJobLimit",
            "QOSMaxWallDurationPerJobLimit", "AssocMaxNodesPerJobLimit",
            "AssocMaxWallDurationPerJobLimit", "QOSMaxCpuPerJobLimit", "AssocMaxCpuPerJobLimit")

#: What to do about a job that ended, by its final state.
ENDED = {
    "TIMEOUT": "it reached its time limit (slurm_time=)",
    "CANCELLED": "it was cancelled outside this cluster's commands",
    "NODE_FAIL": "a node of it failed",
    "FAILED": "its batch script failed (without a shared home, one that could not make its 0700 "
              "folder on its first node leaves no output)",
    "COMPLETED": "its engines' step ended by itself (see its output)",
    "OUT_OF_MEMORY": "it ran out of memory",
    "PREEMPTED": "it was preempted",
    "BOOT_FAIL": "its nodes failed to boot",
    "DEADLINE": "it reached its deadline",
}


def job_name(settings, allocation):
    """The job's name: which cluster and allocation it is (its comment adds whose)."""
    return f"ipp-{settings.cluster_name}-{allocation.name}"


def sbatch_options(allocation):
    """The sbatch options the allocation's variables ask for (its job's name and output
    are the submit step's): nodes, partition, time, account, an engine per task where
    ``engines=`` says how many, then ``slurm_options`` as they are."""
    options = [f"--nodes={allocation.nodes}"]
    for key in ("partition", "time", "account"):
        if getattr(allocation, key):
            options.append(f"--{key}={getattr(allocation, key)}")
    if allocation.engines:
        options.append(f"--ntasks-per-node={allocation.engines}")
    return [*options, *allocation.options]


def job_script(settings, allocation):
    """The job script of *allocation* (see the module)."""
    shared = "yes" if settings.shared_home else "no"
    node = script(settings, Step(
        "slurm_node", (allocation.engines or "", allocation.threads or "", allocation.gpus or "",
                       "yes" if settings.engine_restart else "no", settings.memory_limit, shared),
        package("slurm_node")), setup=allocation.setup)
    job = script(settings, Step(
        "slurm_job", (MARGIN, "yes" if allocation.master else "no", allocation.name, shared),
        as_base64(node)), setup=allocation.setup)
    # slurm_master: the batch script stops the controller and Jupyter on its node as it ends.
    return "#!/bin/sh\n" + (program("steps/master/stop_master.sh") if allocation.master else "") + job


def output(settings):
    """Where the job's output goes, as sbatch writes it: empty, the submit step's default,
    beside its record on the master (``$run/slurm/GROUP-%j.out``), which the nodes see with a
    shared home; else nowhere: the batch script writes its own into its node's run folder
    (see ``slurm_job``), as any path that exists on every node is one of /tmp's, whose
    name another user can take first."""
    return "" if settings.shared_home else "/dev/null"


def output_file(settings, allocation, job):
    """The file of *job*'s output (see `output`), in words: with a shared home, where the
    master's ``slurm_jobs`` says that sbatch writes it; else in its first node's run folder,
    where the batch script writes it."""
    name, file = settings.cluster_name, f"{allocation.name}-{job.id}.out"
    if settings.shared_home:
        return job.output or f"~/.ipp-cluster/{name}/<master>/slurm/{file}"
    if job.batch:
        return f"~/.ipp-cluster/{name}/{label(job.batch, job)}/{file} on {job.batch}"
    return f"~/.ipp-cluster/{name}/FIRST_NODE@{job.id}/{file} on the job's first node"


def keyed(labels):
    """Mark, on a node of running jobs without a shared home, that the controller's
    connection file (`tasks.commands.engines.write_engine_file`, the step before) is there
    for the jobs of *labels* (their ``NODE@JOB``): their steps start its engines."""
    return Step("slurm_keyed", tuple(labels))


def submit(settings, index, allocation, script, mode="keep"):
    """Submit *script* for *allocation*, unless a job of it is queued or runs (*mode*
    ``keep``); ``renew``: end that job first; ``test``: only ask whether Slurm would run it."""
    return Step("slurm_submit", (index, allocation.name, job_name(settings, allocation), mode,
                                 output(settings), *sbatch_options(allocation)),
                as_base64(script))


def on_job(function, settings, index, allocation):
    """A step on the allocation's recorded job: ``slurm_jobs``, ``slurm_cancel``,
    ``slurm_cancelled`` or ``slurm_restart``."""
    return Step(function, (index, allocation.name, job_name(settings, allocation)))


def cancel_all():
    """End every job the cluster recorded on the master (``cluster.down``, before the
    controller stops), and then (`cancelled_all`) wait for them."""
    return Step("slurm_cancel_all")


def cancelled_all():
    """Wait for what `cancel_all` ended; reports ``slurm_group_N=`` and ``slurm_N=``."""
    return Step("slurm_cancelled_all")


def start_keeper(settings, allocations):
    """Write the keeper's plan for *allocations* (``tasks/remote/master/keeper.py``), top each
    up to its jobs (``slurm_jobs``'s N, or MIN), and keep the keeper running where one of
    them renews its jobs; reports ``keeper_once=`` and ``keeper=``."""
    plan = {"name": settings.cluster_name, "groups": {
        a.name: {"jobs": a.jobs[0], "time": seconds(a.time) if a.time else None, "renew": a.renew}
        for a in allocations}}
    keep = "yes" if any(a.renew != 0 for a in allocations) else "no"
    return Step("start_keeper", (json.dumps(plan), keep), package("start_keeper"))


def stop_keeper():
    """Stop the keeper, before the jobs are cancelled; reports ``left_keeper=``."""
    return Step("stop_keeper")


def keeper_said():
    """Report the keeper's last decisions (``keeper_state=``, JSON) and ``keeper=``."""
    return Step("keeper_said")


@dataclass(frozen=True)
class Job:
    """A job as squeue and scontrol say it."""

    id: str
    state: str
    reason: str = ""
    left: str = ""   # time left, as Slurm writes it
    nodes: str = ""  # Slurm's node list: host[2-5]
    start: str = ""  # the (expected) start time
    cpus: dict = field(default_factory=dict)  # node -> CPUs the job holds there
    gpus: dict = field(default_factory=dict)  # node -> GPUs Slurm bound to it there (its GRES)
    batch: str = ""  # the node that runs the batch script (the first), once the job runs
    batch_address: str = ""  # the address Slurm reaches it at (its NodeAddr)
    steps: int = None  # job steps running (the engines'); 0 while the job is held
    addresses: dict = field(default_factory=dict)  # node -> the address Slurm reaches it at
    output: str = ""  # the file sbatch writes its output to on the master, with a shared home

    @property
    def active(self):
        return self.state in ACTIVE

    @property
    def held(self):
        """True for a running job without its engines' step (engines.stop of the allocation
        that holds the controller, or before the controller first starts)."""
        return self.state == "RUNNING" and self.steps == 0

    @property
    def hopeless(self):
        """True for a pending job Slurm will never start as it is."""
        return self.state == "PENDING" and self.reason in HOPELESS

    @property
    def seconds_left(self):
        try:
            return seconds(self.left)
        except ValueError:
            return None


def parse_job(text):
    """A `Job` of ``slurm_jobs``'s report (``ID|STATE|REASON|LEFT|NODES|START|NAME|USER|CPUS|
    BATCH/ADDRESS|STEPS|NODE=ADDRESS,...|OUTPUT``), or None when there is no job of ours."""
    fields = text.split("|")
    if len(fields) < 6 or not fields[0].isdigit():
        return None
    cpus, gpus = {}, {}
    for part in filter(None, (fields[8] if len(fields) > 8 else "").split(";")):
        nodes, ids, gres = (part.split("/", 2) + ["", ""])[:3]
        bound = sum(count_ids(found) for found in _GPU_IDS.findall(gres))
        for node in expand_nodes(nodes):
            cpus[node] = cpus.get(node, 0) + count_ids(ids)
            if bound:
                gpus[node] = gpus.get(node, 0) + bound
    batch, _, address = (fields[9] if len(fields) > 9 else "").partition("/")
    addresses = dict(pair.split("=", 1) for pair in (fields[11] if len(fields) > 11 else "").split(",")
                     if "=" in pair)
    return Job(fields[0], fields[1], "" if fields[2] == "None" else fields[2], fields[3],
               "" if fields[4] in ("", "(null)") else fields[4], fields[5], cpus, gpus,
               batch, address or batch, int(fields[10]) if len(fields) > 10 and fields[10].isdigit() else None,
               {node: address for node, address in addresses.items() if address},
               "|".join(fields[12:]))


#: The indexes of the GPUs in scontrol's ``GRES=gpu:a100:2(IDX:0-1),...``.
_GPU_IDS = re.compile(r"gpu[^,(]*\(IDX:([^)]*)\)")


def parse_verdict(text):
    """``(word, rest)`` of a submit's report: ``ok``/``submitted``/``refused`` and what Slurm said."""
    word, _, rest = text.partition("|")
    return word, rest


def expand_nodes(text):
    """The names of Slurm's node list *text* (``host[2-3,5],gpu01``), in order."""
    names = []
    for match in re.finditer(r"([^,\[]+)(?:\[([^\]]*)\])?([^,]*)", text):
        prefix, ranges, suffix = match.groups()
        if not prefix and not ranges:
            continue
        if ranges is None:
            names.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for number in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{str(number).zfill(len(low))}{suffix}")
    return names


def count_ids(text):
    """How many CPUs scontrol's ``CPU_IDs=`` (``0-1,4``) names."""
    total = 0
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            total += int(high or low) - int(low) + 1
    return total


def label(node, job):
    """What the engines of *job* on *node* register under (see ``slurm_node``): ``NODE@JOB``."""
    return f"{node}@{job.id}"


def expected(job, allocation):
    """``{label: engines}`` of a running *job*'s nodes (see `label`), as ``slurm_node`` plans
    them: ``engines=`` on each node, else one per GPU of ``gpus=`` (those Slurm bound with
    ``auto``), else its CPUs."""
    def count(node, cpus):
        if allocation.engines:
            return allocation.engines
        if allocation.gpus == "auto" and job.gpus.get(node):
            return job.gpus[node]
        if allocation.gpus and allocation.gpus != "auto":
            return len(allocation.gpus.split(","))
        return cpus
    return {label(node, job): count(node, cpus) for node, cpus in job.cpus.items()}
