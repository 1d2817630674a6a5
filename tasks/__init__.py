"""
A Fabric task library that brings an ipyparallel cluster up and down over SSH.

Layers, from the bottom: `inventory` (pure parsing) -> `commands` (pure, quoted
shell builders) -> `runner` (the parallel fan-out, per-host results) ->
`lifecycle` (the steps) -> the task namespaces `master`, `engines`, `cluster`.
"""
