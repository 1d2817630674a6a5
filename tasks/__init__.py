"""
A Fabric task library that brings an ipyparallel cluster up and down over SSH.

Layers, from the bottom: `inventory` (pure parsing) -> `commands` (pure: the step
calls and scripts for the programs of ``remote/``, the files that run on the hosts)
-> `runner` (the parallel fan-out, per-host results; host keys in `hostkeys` and
`knownhosts`) -> `lifecycle` and `operations` (the steps, which return results) ->
the task namespaces `master`, `engines`, `cluster` (with `operate`), which print
through `report`.
"""
