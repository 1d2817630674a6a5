"""
The inventory: which host plays which role, and the cluster's settings, read from the
inventory folder into plain, immutable objects (`folder`), or one error that names the
file, the line and what is wrong. Pure: it reads those files and imports nothing of
the layers above.
"""
