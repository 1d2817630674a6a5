"""
Run one program of this package on a host::

    python RUN_DIR/ipp_remote MODULE ARGS...

runs the module ``ipp_remote.MODULE`` (``master.controller``, ``engines.supervisor``, ...)
as ``__main__`` with ARGS, as ``python -m`` would, but with only the run directory added
to its path (never the working folder, and nothing through ``PYTHONPATH`` that the engines
and their tasks would inherit). The package keeps its folders on the host, so its modules
import one another relatively, the same as in ``tasks/remote/`` here.
"""

import os
import runpy
import sys

folder = sys.path[0]  # Python runs a folder's __main__.py with that folder first on its path
sys.path[0] = os.path.dirname(folder)
if len(sys.argv) < 2:
    raise SystemExit(f"usage: python {folder} MODULE ARGS...")
runpy.run_module(f"{os.path.basename(folder)}.{sys.argv.pop(1)}", run_name="__main__",
                 alter_sys=True)
