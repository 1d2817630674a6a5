"""
What an engine host reports to the controller's host inbox, as both ends read it: the
message's type, the key of the inbox's port in the engine connection file, and the shape
of a report (`sample`). The engine hosts send (``engines/host_report.py``), the controller
receives (``master/host_inbox.py``) and the dashboard reads what it kept
(``jupyter/dashboard/hosts.py``): one definition for the three.
"""

import math

PORT_KEY = "ipp_cluster_hosts"  # the inbox's port, in the engine connection file
MSG_TYPE = "ipp_cluster_host"


def sample(document):
    """*document* when it has the shape of a host's sample as `rows` reads it, else None:
    ``sampled`` (seconds since the epoch), ``host`` (a dict) and ``engines`` (``{N:
    {"rss": bytes, "limit": bytes}}``, each None or a number). The inbox keeps only such
    reports (``host_inbox.py``), and the page reads only such files."""
    if not isinstance(document, dict) or not _number(document.get("sampled")):
        return None
    engines = document.get("engines")
    if not isinstance(document.get("host"), dict) or not isinstance(engines, dict):
        return None
    for facts in engines.values():
        if not isinstance(facts, dict) or not all(
                facts.get(key) is None or _number(facts.get(key)) for key in ("rss", "limit")):
            return None
    return document


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
