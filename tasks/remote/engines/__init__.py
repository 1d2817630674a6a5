"""
An engine host's programs (an SSH host, or a Slurm job's node). ``steps/engines/
start_engines.sh`` (or ``slurm_job.sh`` in a job) runs the `supervisor` in the screen
session ``NAME-engines``: it forks the engines (`engine_fork`), keeps them
(`engine_life`), samples the host (`host_sample`) and has `host_report` send the samples
to the controller.
"""
