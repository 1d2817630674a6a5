"""
The task library's table of contents: ``fab -l`` lists it, ``fab -h TASK`` explains a task.
"""

from invoke import Collection

from tasks import cluster, engines, master

ns = Collection(master.start_master, master.stop_master, master.ns, engines.ns, cluster.ns)
