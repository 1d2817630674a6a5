"""
The steps of Slurm allocations: submit, watch and cancel their jobs (`allocations`), bring
the controller's key to nodes without a shared home (`job_key`), restart the engines of
running jobs (`job_engines`) and find the controller in a job (`master_job`,
``slurm_master=yes``).
"""
