"""
The master's programs. ``steps/master/start_master.sh`` runs the controller
(`controller`, with its host inbox `host_inbox`, its journal of tasks `outbox` and the
log's guard `refusals`) under the nanny in the screen session ``NAME-controller``;
``steps/master/probe.sh`` runs `probe` for each ``fab`` command that asks the controller;
``steps/slurm/keeper.sh`` runs the keeper of the Slurm jobs (`keeper`, deciding with
`renewal`) under the nanny in the screen session ``NAME-keeper``, where Slurm's commands run.
"""
