"""
The inventory's variables, whatever the file's format: which are known, and each value
checked and converted the one way, from what Ansible would read (an int, a string, a
list: ``ast.literal_eval`` of an INI value, or YAML's own types).

Known: this project's ``engines``, ``threads``, ``gpus`` and ``setup``; for groups, the
Slurm allocation's ``slurm_nodes``, ``slurm_partition``, ``slurm_time``, ``slurm_account``,
``slurm_options``, ``slurm_master``, ``slurm_jobs``, ``slurm_idle`` and ``slurm_renew``
(`tasks.inventory.allocations`); Ansible's
``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``
and, for groups, ``ansible_group_priority``. Other ``ansible_*`` names are ignored;
anything else is an error.
"""

import ast
import re
import shlex
import warnings

#: A user name, and a host name or IPv4 address, as the inventory's host strings hold them.
USER = r"[A-Za-z_][A-Za-z0-9_.-]*"
HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_USER = re.compile(rf"^{USER}$")
_HOSTNAME = re.compile(rf"^(?:{HOSTNAME}|[0-9A-Fa-f:.]+)$")  # or an IPv6 address, unbracketed
_KEY_FILE = re.compile(r"^[~/A-Za-z0-9._+@-][A-Za-z0-9._/+@-]*$")
_GPUS = re.compile(r"^(?:auto|[0-9]+(?:,[0-9]+)*)$")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*$")  # a partition (or several), an account
#: Slurm's time limits: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS,
#: DAYS-HOURS:MINUTES, DAYS-HOURS:MINUTES:SECONDS.
_SLURM_TIME = re.compile(r"^(?:[0-9]+(?::[0-9]{1,2}){0,2}|[0-9]+-[0-9]{1,2}(?::[0-9]{1,2}){0,2})$")

#: The Ansible variables that mean something here.
USED = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file")
#: This project's own variables.
OWN = ("engines", "threads", "gpus", "setup")
KNOWN = (*OWN, *USED)
#: A Slurm allocation's variables (`tasks.inventory.allocations`): group variables only.
SLURM = ("slurm_nodes", "slurm_partition", "slurm_time", "slurm_account", "slurm_options",
         "slurm_master", "slurm_jobs", "slurm_idle", "slurm_renew")
#: Ansible's order among groups of one depth (default 1); a group variable only.
PRIORITY = "ansible_group_priority"
HINT = "known: engines=N, threads=N, gpus=auto|0,1, setup=SNIPPET, " + ", ".join(USED)


def ansible_value(text):
    """An INI value as Ansible reads it: a Python literal (``4``, ``'a b'``, ``"x"  # note``)
    where it is one, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def is_known(key, group=False):
    """True for a variable that means something here (*group*: in a group's variables)."""
    return key in KNOWN or (group and (key == PRIORITY or key in SLURM))


def _whole(value):
    """*value* as a whole number (an int, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def check(key, value, error, shown=None):
    """
    *value* of the known variable *key*, checked and converted (numbers: int; the rest:
    text), or *error(reason)* raised. *shown* is how the reason writes the value (the
    file's own text; default: its repr).
    """
    shown = repr(value) if shown is None else shown
    if key in ("engines", "threads", "slurm_nodes", PRIORITY):
        number = _whole(value)
        if number is None or number < 1:
            raise error(f"{key}={shown} must be a whole number of at least 1")
        return number
    if key == "ansible_port":
        number = _whole(value)
        if number is None or not 1 <= number <= 65535:
            raise error(f"ansible_port={shown} must be a port number from 1 to 65535")
        return number
    if key == "gpus":
        if isinstance(value, (list, tuple)) and all(_whole(v) is not None for v in value):
            value = ",".join(str(_whole(v)) for v in value)
        elif _whole(value) is not None:
            value = str(_whole(value))
        indexes = value.split(",") if isinstance(value, str) else []
        if not indexes or not _GPUS.match(value) or len(set(indexes)) != len(indexes):
            raise error(f"gpus={shown} must be auto or GPU indexes such as 0,2 (each once)")
        return value
    if key == "setup":
        if not isinstance(value, str) or not value.strip():
            raise error(f"setup={shown} must be a shell snippet, such as"
                        " setup='module load python/3.11'")
        return value
    if key.startswith("slurm_"):
        return _slurm(key, value, shown, error)
    patterns = {"ansible_host": _HOSTNAME, "ansible_user": _USER,
                "ansible_ssh_private_key_file": _KEY_FILE}
    if not isinstance(value, str) or not patterns[key].match(value):
        raise error(f"{key}={shown} is not a valid {key[len('ansible_'):].replace('_', ' ')}")
    return value


def _slurm(key, value, shown, error):
    """A Slurm allocation's text variable, checked (`check`): it becomes sbatch's arguments."""
    text = value if isinstance(value, str) else None
    if key == "slurm_master":
        answer = {"yes": True, "true": True, "no": False, "false": False}.get(
            str(value).lower() if isinstance(value, (str, bool)) else None)
        if answer is None:
            raise error(f"slurm_master={shown} must be yes or no")
        return answer
    if key in ("slurm_jobs", "slurm_idle", "slurm_renew"):
        return _keeper(key, value, shown, error)
    if key == "slurm_time":
        text = str(value) if _whole(value) is not None else text  # minutes, as a number
        if text is None or not _SLURM_TIME.match(text):
            raise error(f"slurm_time={shown} must be a Slurm time limit such as 04:00:00, "
                        "90 (minutes) or 1-12:00:00")
        return text
    if key == "slurm_options":
        try:
            words = shlex.split(text) if text is not None else None
        except ValueError as problem:
            raise error(f"slurm_options={shown}: {problem}") from None
        if not words or not words[0].startswith("-"):
            raise error(f"slurm_options={shown} must be sbatch options, such as "
                        "slurm_options='--qos=normal --constraint=avx2'")
        return text
    if text is None or not _SLURM_NAME.match(text):
        raise error(f"{key}={shown} is not a valid Slurm {key[len('slurm_'):]} name")
    return text


def _keeper(key, value, shown, error):
    """What the keeper of an allocation's jobs reads (`check`): ``slurm_jobs`` as ``(MIN,
    MAX)`` (N: ``(N, N)``), ``slurm_idle`` in seconds, ``slurm_renew`` as seconds before a
    job's end, None (on, sized by the keeper) or 0 (no)."""
    if key == "slurm_jobs":
        low, dash, high = str(value).partition("-") if _whole(value) is None else (str(value), "", "")
        jobs = (_whole(low), _whole(high if dash else low))
        if isinstance(value, bool) or None in jobs or jobs[1] < 1 or jobs[0] > jobs[1] or (
                not dash and jobs[0] < 1):
            raise error(f"slurm_jobs={shown} must be a number of jobs of at least 1 (2), or MIN-MAX "
                        "with MIN at most MAX and MAX at least 1 (0-4)")
        return jobs
    if key == "slurm_idle":
        number = _whole(value)
        if number is None or number < 1:
            raise error(f"slurm_idle={shown} must be a whole number of seconds of at least 1")
        return number
    answer = {"yes": None, "true": None, "on": None, "no": 0, "false": 0, "off": 0}.get(
        str(value).lower() if isinstance(value, (str, bool)) else None, "")
    if answer == "" and (_whole(value) or 0) >= 1:
        answer = _whole(value)
    if answer == "":
        raise error(f"slurm_renew={shown} must be yes, no, or the seconds before a job's end at "
                    "which its successor is submitted")
    return answer
