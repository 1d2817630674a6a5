"""
Talking to hosts over SSH: the one fan-out runner (`fleet.Fleet`, per-host results),
host keys and known_hosts as OpenSSH keeps them, what a failed login tried (`auth`),
and local ports forwarded through a connection (`forward`). It may use the inventory
and ``remote`` (the shell every script goes to); it knows nothing of the steps.
"""
