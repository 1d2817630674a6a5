"""
The steps of an engine host (``tasks/remote/steps/engines/``): start, renew and stop its
engines under their supervisor, say how they are.
"""

from .script import Step
from .shipped import as_base64, package


def write_engine_file(text):
    """Write the controller's engine connection file (*text*) on a host without a shared home."""
    return Step("write_engine_file", (), as_base64(text))


def start_engines(settings, host, planned=None, restart=False):
    """
    Start the engines of *host* (a `tasks.inventory.Host`), all kept by one supervisor
    (``tasks/remote/engines/supervisor.py``), with their threads and GPUs (see ``plan_engines`` in
    ``lib.sh``): the inventory's ``engines=``, else one per GPU of ``gpus=``, else one per
    core (*planned*: the count the host's facts gave, when known already). A supervisor
    that runs with the same plan starts the engines it stopped or gave up on; with
    *restart* or another plan, every engine of the host starts anew.
    """
    count = host.engines or ("" if host.gpus else planned or "")
    return Step("start_engines", (host.name, count, "yes" if restart else "no",
                                  "yes" if settings.engine_restart else "no",
                                  settings.memory_limit, host.threads or "", host.gpus or ""),
                package("start_engines"))


def renew_engines(numbers):
    """Start the engines *numbers* of a host again at once (their registration was dropped)."""
    return Step("renew_engines", tuple(int(n) for n in numbers))


def stop_engines():
    """Stop every engine of the cluster on a host; reports ``left_engine=``."""
    return Step("stop_engines")


def host_status(host):
    """Report *host*'s cluster sessions (``sessions=``), the engines' ``supervisor=`` state,
    ``expected=`` engines and the ``threads=`` its engines run with."""
    return Step("host_status", (host.engines or "", host.gpus or ""))
