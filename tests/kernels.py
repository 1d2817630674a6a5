"""
A kernel of the master's Jupyter, as a notebook has one, for the end-to-end tests that run
code in it: opened through Jupyter's REST API with the page's token, talked to with
jupyter_client (Jupyter runs as this user, on this machine's files), shut down after.
"""

import contextlib
import json
import urllib.request
from pathlib import Path

from jupyter_client import BlockingKernelClient
from jupyter_core.paths import jupyter_runtime_dir


@contextlib.contextmanager
def jupyter_kernel(port, token, spec=None):
    """A started `BlockingKernelClient` of a new kernel of the Jupyter on this machine's
    *port* (of kernel spec *spec*, else Jupyter's default); the kernel is deleted after."""
    headers = {"Authorization": f"token {token}"}
    body = {"name": spec, "path": ""} if spec else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels", headers=headers,
                                     data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel_id = json.load(response)["id"]
    kernel = BlockingKernelClient()
    kernel.load_connection_file(Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json")
    kernel.start_channels()
    try:
        yield kernel
    finally:
        kernel.stop_channels()
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels/{kernel_id}",
                                                      method="DELETE", headers=headers), timeout=30)
