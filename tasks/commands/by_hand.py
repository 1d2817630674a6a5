"""
An allocation's job as a user would submit it by hand (``fab engines.script``): the batch
script that `tasks.commands.slurm.submit` sends to the login node, and the ``sbatch`` line
that ``slurm_submit`` (``tasks/remote/steps/slurm/slurm.sh``) runs with it, written as one
program for ``sh`` on the login node. Pure: built from the inventory, no host is asked.

What only the login node knows at submit time stays in the line as the shell words that
``slurm_submit`` itself uses (``$HOME``, ``$(uname -n)``, ``$(id -un)``): run there, they say
the same, and the comment lines above the line name them.
"""

import base64

from . import slurm
from .script import quote

#: Ends the batch script in the here-document that writes it to its file.
END_OF_SCRIPT = "IPP-END-OF-SCRIPT"

#: The master's run folder (``$run`` of ``lib.sh``'s ``setup``) as words of the shell.
RUN = '"$HOME"/{}"$(uname -n)"'


def submitted(settings, allocation):
    """``(batch script, job name, output, sbatch options)`` of *allocation*, taken from the
    very step that `tasks.steps.slurm.allocations.submit` sends (`tasks.commands.slurm.submit`)."""
    step = slurm.submit(settings, 0, allocation, slurm.job_script(settings, allocation))
    _, _, job_name, _, output, *options = step.args
    return base64.b64decode(step.data).decode(), job_name, output, options


def run_folder(settings):
    """The master's run folder, ``~/.ipp-cluster/NAME/HOST``, as words of the shell."""
    return RUN.format(quote(f".ipp-cluster/{settings.cluster_name}/"))


def sbatch_line(settings, allocation, path):
    """The ``sbatch`` command line of ``slurm_submit`` for *allocation*'s script at *path*:
    its own options in its order (``--parsable``, ``--job-name``, ``--output``, ``--comment``),
    then the allocation's (`tasks.commands.slurm.sbatch_options`), each quoted for ``sh``."""
    _, job_name, output, options = submitted(settings, allocation)
    if output:
        output = quote(output)
    else:  # slurm_submit's default: beside the job's record in the master's run folder
        output = run_folder(settings) + quote(f"/slurm/{allocation.name}-%j.out")
    comment = quote(f"ipp-cluster {settings.cluster_name} {allocation.name} of ") + '"$(id -un)@$(uname -n)"'
    return " ".join(["sbatch", "--parsable", quote(f"--job-name={job_name}"), f"--output={output}",
                     f"--comment={comment}", *map(quote, options), quote(path)])


def by_hand(inventory, allocation):
    """The program for ``sh`` on the login node that submits *allocation*'s job as
    ``cluster.up`` does: comment lines saying what differs at submit time, the batch script
    in a quoted here-document that writes it as it is, the run folder, the ``sbatch`` line."""
    settings, login = inventory.settings, inventory.slurm_host
    text, job_name, _, _ = submitted(settings, allocation)
    if END_OF_SCRIPT in text.splitlines() or not text.endswith("\n"):
        raise ValueError(f"the batch script of {allocation.name} holds the line {END_OF_SCRIPT} "
                         "or does not end with a newline (which its here-document adds)")
    path = f"{job_name}.sh"
    setup = " ".join(login.setup.split())
    lines = [
        f"# Allocation {allocation.name} of the cluster {settings.cluster_name}: the batch script and the "
        "sbatch line of fab cluster.up,",
        f"# which submits them on {login.name} (the login node) when the allocation has no job queued "
        "or running.",
        f"# Nothing was submitted. To submit by hand, run these lines in a shell on {login.name}"
        + (f", after its SETUP ({setup})" if setup else "") + ":",
        "# sbatch gives that shell's environment to the job (fab's: /bin/sh after /etc/profile and SETUP).",
        "# Known there only, as sbatch runs: $HOME, $(uname -n) (the run folder "
        f"~/.ipp-cluster/{settings.cluster_name}/HOST/) and",
        f"# $(id -un); fab writes the script to a temporary file in the run folder's slurm/, not to {path}",
        "# (written here only as a new file of yours: remove an older one first).",
        f"(umask 077 && set -C && cat > {quote(path)}) <<'{END_OF_SCRIPT}'",
        text[:-1],  # the here-document's newline ends it
        END_OF_SCRIPT,
        f"(umask 077 && mkdir -p {run_folder(settings)}/slurm)",
        sbatch_line(settings, allocation, path),
    ]
    return "\n".join(lines) + "\n"
