"""
What runs on the hosts, and only that: every file here is shipped, as it is, to the hosts
(``tasks.commands.shipped`` says which step takes which), and imports nothing of the user's
machine. By where it runs, and who starts it:

- ``steps/``: the shell steps, one function each, that ``fab`` sends over SSH to a
  ``/bin/sh -s`` (``tasks.commands.script``), after ``steps/lib.sh``:
  ``steps/master/`` (the controller and Jupyter, their files, the probe),
  ``steps/engines/`` (an engine host's engines), ``steps/slurm/`` (on the login node:
  submit and watch the jobs; in a job: its batch script and its nodes' step) and
  ``steps/any/`` (any host: facts, install, a user's command, logs);
- ``master/``: the controller (run by the nanny in the screen session ``NAME-controller``),
  the probe (run by ``probe.sh`` for each ``fab`` command that asks the controller) and the
  keeper of the Slurm jobs (by the nanny in ``NAME-keeper``, on the login node);
- ``jupyter/``: what the master's Jupyter loads: the kernels' module ``ipp_cluster`` and the
  dashboard (a package);
- ``engines/``: an engine host's supervisor (in the screen session ``NAME-engines``, or a
  Slurm job's step) and what it forks and runs;
- ``shared/``: what more than one of them imports.

On a host the Python of these folders is the package ``ipp_remote`` in the run directory
(``~/.ipp-cluster/NAME/LABEL/``), its folders kept, so that its modules import one another
relatively, there as here; ``python RUN_DIR/ipp_remote MODULE ARGS`` runs one of them
(``__main__.py``).
"""
