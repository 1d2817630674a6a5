"""
What the master's Jupyter loads (``steps/master/start_master.sh`` starts it with the run
directory on its path): the module of every IPython kernel (`ipp_cluster`, loaded by each
kernel through ``ipp_cluster_kernel.py``, and by every Python of the cluster's environment
through ``ipp_cluster.pth``, which ``cluster.install`` puts there) and the dashboard
(`dashboard`), both server extensions.
"""
