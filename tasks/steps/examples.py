"""
The example notebooks that ``cluster.up`` puts on the master, packed for the trip.
"""

import io
import tarfile
from pathlib import Path

#: The folder of example notebooks in this project.
FOLDER = Path(__file__).resolve().parents[2] / "notebooks"


def packed():
    """The notebooks as a tar.gz, for `tasks.commands.put_examples`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for notebook in sorted(FOLDER.glob("*.ipynb")):
            tar.add(notebook, arcname=notebook.name)
    return buffer.getvalue()
