"""
What more than one role's programs import: what the code knows of processes
(`process_tree`), the restart policy and the nanny that keeps the controller, Jupyter and the
keeper of the Slurm jobs (`nanny`), the reading of the launch lines in the screen logs (`screen_logs`), who holds a
loopback port (`loopback`), what an engine host reports to the controller
(`host_reports`), and the versions a host reports (`versions`, run by ``facts.sh``).
Shipped with the programs that import it; run by nobody on its own, but ``nanny`` (by
``start_master.sh`` and ``keeper.sh``) and ``loopback`` (by ``relay.sh``).
"""
