"""
What the tasks show a person: tables, the exit codes and messages of failures
(`report`), the live progress of engine registration (`progress`). It may read the
results of the steps; it contacts no host.
"""
