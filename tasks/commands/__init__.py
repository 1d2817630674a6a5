"""
What ``fab`` sends to the hosts and how it reads their answers: pure functions, run on the
user's machine (nothing here runs on a host; that is ``tasks/remote/``).

- `script`: the one program a host's ``/bin/sh -s`` reads, made of `Step` calls;
- `shipped`: which files of ``tasks/remote/`` each step takes along (the one index of it);
- `master`, `engines`, `hosts`: the steps of each role, from settings to `Step`;
- `slurm`: the batch script of an allocation, and what Slurm's answers mean;
- `answers`: the ``key=value`` lines that the steps report.

The builders of the roles are named here too, as the steps call them
(``commands.start_master(...)``).
"""

from .engines import host_status, renew_engines, start_engines, stop_engines, write_engine_file
from .hosts import facts, peer_address, reach, tail_logs, user_command
from .master import (controller_ports, heartbeat, probe, put_examples, read_client_file,
                     read_engine_file, read_token, relay, start_master, stop_master, write_plan)
from .script import END_OF_DATA, REMOTE_SHELL, TAG, Step, quote, script
from .shipped import as_base64, program

__all__ = ["END_OF_DATA", "REMOTE_SHELL", "TAG", "Step", "as_base64", "controller_ports", "facts",
           "heartbeat", "host_status", "peer_address", "probe", "program", "put_examples", "quote",
           "reach", "read_client_file", "read_engine_file", "read_token", "relay", "renew_engines",
           "script", "start_engines", "start_master", "stop_engines", "stop_master",
           "tail_logs", "user_command", "write_engine_file", "write_plan"]
