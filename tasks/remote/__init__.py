"""
The programs that run on the hosts, as files: the shell library and steps (``*.sh``)
and the Python programs (``*.py``) that `tasks.remote.commands` sends on standard input.
"""
