# An IPython config file that each IPython kernel of the master's Jupyter loads after its
# own (the kernel's --config=, named by its absolute path: see load_into_kernels in
# ipp_cluster.py). Loaded in addition to them, it changes none of their settings (a user's
# or a site's IPKernelApp.exec_files, say); it only loads ipp_cluster.py from beside this
# file, never by name: the kernel's working folder (a notebook folder, which others may
# write to) is on its sys.path, before all but the PYTHONPATH and the standard library, and
# first of all where the kernel spec sets a PYTHONPATH of its own. The notebook's later
# imports of ipp_cluster get this module.
import importlib.util as _util
import os as _os
import sys as _sys

_spec = _util.spec_from_file_location(
    "ipp_cluster", _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "ipp_cluster.py"))
_module = _util.module_from_spec(_spec)
_sys.modules["ipp_cluster"] = _module  # before it runs, as an import does
_spec.loader.exec_module(_module)
_module.install_when_imported()
