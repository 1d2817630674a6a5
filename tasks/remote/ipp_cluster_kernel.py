# Run by each IPython kernel of the master's Jupyter at its start (IPKernelApp.exec_files,
# named by its absolute path: see load_into_kernels in ipp_cluster.py), in the notebook's
# namespace, where it leaves no name. It loads ipp_cluster.py from beside this file, never
# by name: the kernel's working folder (a notebook folder, which others may write to) is on
# its sys.path, before all but the PYTHONPATH and the standard library, and first of all
# where the kernel spec sets a PYTHONPATH of its own. Later imports of ipp_cluster in the
# notebook get this module.


def _ipp_cluster_start(here):
    import importlib.util
    import os
    import sys

    path = os.path.join(os.path.dirname(os.path.abspath(here)), "ipp_cluster.py")
    spec = importlib.util.spec_from_file_location("ipp_cluster", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ipp_cluster"] = module  # before it runs, as an import does
    spec.loader.exec_module(module)
    module.install_when_imported()


_ipp_cluster_start(__file__)
del _ipp_cluster_start
