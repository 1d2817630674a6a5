"""
A Fabric task library that brings an ipyparallel cluster up and down over SSH.

What a user types is here: the task namespaces `master`, `engines` and `cluster` (with
its tools for each host in `on_hosts` and its ways here in `access`), thin, reading like
the steps a person would take, and `context`, what every task starts with: the inventory
and a session on it, the one place that decides where the master runs. Below them, one
folder per layer, each using only those under it:

- ``inventory/``: the inventory folder read into plain objects (pure);
- ``remote/``: what runs on the hosts, and only that (shell steps and Python programs, as
  files, in folders by role: see its docstring);
- ``commands/``: what ``fab`` sends to the hosts and how it reads their answers (pure, quoted);
- ``ssh/``: the one fan-out runner (`ssh.fleet.Fleet`), host keys, forwards;
- ``steps/``: one parallel round trip each, returning per-host results;
- ``show/``: tables, exit codes and progress, printed by the tasks only.
"""

#: This release of ipp-cluster (Semantic Versioning); CHANGELOG.md's newest release.
__version__ = "0.4.0"
