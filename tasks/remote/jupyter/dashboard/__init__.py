"""
The dashboard at ``/ipp-dashboard/``, a server extension of the master's Jupyter
(`extension`): what it reads of the run directory and the controller (`extension.Watcher`),
the engines' output stream (`listener`, `stream`), the tasks' history (`history`) and the
hosts' rows (`hosts`); the page itself is ``page.html``.
"""
