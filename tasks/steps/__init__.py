"""
The steps: each one parallel round trip to the hosts through a `tasks.ssh.fleet.Fleet`,
returning per-host results and never printing (lifecycle, preflight and its judging,
status, operations), with the pure pieces they decide by (the controller's `address`,
the `client` file, the `environment` installer's archive, the `examples`). They may use
``inventory``, ``remote`` and ``ssh``.
"""
