"""
Judge a host's facts (read by ``tasks/remote/facts.sh``): pure functions.

`problems` compares one host's facts with the master's and says what is wrong
and what to do about it.
"""


import difflib


def _minor(version):
    return ".".join(version.split(".")[:2])


def problems(facts_, master_facts, settings):
    """
    What is wrong on a host, each with what to do about it, given its facts and the master's.

    Python must match the master's to the minor version and ipyparallel exactly:
    a mismatch makes engines fail in obscure ways.
    """
    where = settings.cluster_env or "the PATH"
    found = []
    if facts_.get("screen") != "yes":
        found.append("screen is not installed: install it (apt-get install screen)")
    if facts_.get("env_exists") == "no":
        return found + [_missing_env(settings.cluster_env, facts_.get("env_siblings", "").split())]
    if not facts_.get("python"):
        found.append(f"no Python in {where}: run fab cluster.install")
    missing = facts_.get("missing", "").split()
    if missing:
        found.append(f"{', '.join(missing)} missing from {where}: run fab cluster.install")
    python, master_python = facts_.get("python", ""), master_facts.get("python", "")
    if python and master_python and _minor(python) != _minor(master_python):
        found.append(f"Python {python} here but {master_python} on the master: "
                     "use the same Python minor version on every host")
    ipp, master_ipp = facts_.get("ipyparallel", ""), master_facts.get("ipyparallel", "")
    if python and not ipp:
        found.append(f"ipyparallel is not installed in {where}: run fab cluster.install")
    elif ipp and master_ipp and ipp != master_ipp:
        found.append(f"ipyparallel {ipp} here but {master_ipp} on the master: "
                     "install the same version everywhere (fab cluster.install)")
    if facts_.get("port_user"):
        found.append(f"JUPYTER_PORT {settings.jupyter_port} is taken here by "
                     f"{facts_['port_user']}: choose another JUPYTER_PORT in cluster.env")
    return found


def _missing_env(cluster_env, siblings):
    """What to do when the folder CLUSTER_ENV is missing: perhaps it is misspelled."""
    close = difflib.get_close_matches(cluster_env, siblings, n=1, cutoff=0.75)
    if close:
        return (f"CLUSTER_ENV {cluster_env} does not exist, but {close[0]} does: "
                "correct CLUSTER_ENV in cluster.env")
    return (f"CLUSTER_ENV {cluster_env} does not exist: correct CLUSTER_ENV in cluster.env if it"
            " is misspelled, else create it there with fab cluster.install")
