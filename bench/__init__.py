"""
The benchmark: how fast ``fab cluster.up`` / ``cluster.down`` are, next to
ipyparallel's own SSH launcher and to the floor (the same engines started on
this machine with no SSH), and how the control path scales with the number of
hosts. Run it as root from the project folder: ``python -m bench [--quick]``.

It starts the test suite's fake SSH hosts (``tests/sshhosts.py``), on their own
addresses (127.0.2.101 and up) so that it never meets a test run's hosts.
"""
