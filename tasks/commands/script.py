"""
The program sent to a host: `Step` calls, and the one `script` that runs them.

What runs on a host is one fixed command line, `REMOTE_SHELL`, the same in every
login shell (sh, bash, zsh, fish, ksh, tcsh, csh): a plain ``/bin/sh -s`` reading its
program from standard input. `script` writes that program: the shell library and
the step files of ``tasks/remote/steps/``, sent as they are, then one call per `Step`.
Values reach the steps as the arguments of those calls, each quoted with
`shlex.quote` here and only here (for ``/bin/sh``, which is what reads them); data (the
notebooks, the controller's connection file, a Python program) reaches a step on
its own standard input, as a quoted here-document that no shell interprets.

Steps report on stdout as ``key=value`` lines (see `tasks.commands.answers`), and fail with a
message on stderr and a non-zero exit, which ends the script.
"""

import shlex
from dataclasses import dataclass

from .shipped import program, step_file

#: The variable that marks every process of a cluster role on a host.
TAG = "IPP_CLUSTER_TAG"

#: The whole command line that reaches the login shell. ``env -u`` keeps a tag
#: that the caller may carry (a terminal inside the cluster's Jupyter) off the
#: script's own processes, which a stop would otherwise end.
REMOTE_SHELL = f"env -u {TAG} /bin/sh -s"

#: Ends a step's data. Data is base64 or a program of ``tasks/remote/``, so this
#: line (with '-', not in base64) never occurs in it; `script` checks anyway.
END_OF_DATA = "IPP-END-OF-DATA"


@dataclass(frozen=True)
class Step:
    """A call of the shell function *function* of a file of ``tasks/remote/steps/``."""

    function: str
    args: tuple = ()
    data: str = None  # text for the function's stdin; None: /dev/null
    stream: bool = False  # True: the script's own stdin (what follows it) is the function's fd 3


def quote(value):
    """Quote one value for ``/bin/sh``."""
    return shlex.quote(str(value))


def script(settings, *steps, setup=""):
    """
    The program for the stdin of `REMOTE_SHELL` that runs *steps* in order, on one host
    whose own snippet (the inventory's ``setup``, or ``SETUP``) is *setup*: the steps that
    start programs or read what it sets up (the facts, the plan of GPUs) run it first
    (``user_env`` in ``lib.sh``).
    """
    files = dict.fromkeys(step_file(step.function) for step in steps)
    calls = [_call(Step("setup", (settings.cluster_name, settings.ipp_profile,
                                  settings.bin_prefix, int(settings.engine_timeout), setup)))]
    calls += [_call(step) for step in steps]
    return "".join([program("steps/lib.sh"), *map(program, files), *calls])


def _call(step):
    line = " ".join([step.function, *(quote(arg) for arg in step.args)]) + (" 3<&0" if step.stream else "")
    if step.data is None:
        return f"{line} </dev/null\n"
    data = step.data if step.data.endswith("\n") else step.data + "\n"
    if END_OF_DATA in data.splitlines():
        raise ValueError(f"the data of {step.function} holds the line {END_OF_DATA}")
    return f"{line} <<'{END_OF_DATA}'\n{data}{END_OF_DATA}\n"
