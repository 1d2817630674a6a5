"""
The programs of ``tasks/remote/`` as a host gets them, for the tests that run them here:
`unpack` writes what a step ships (``tasks.commands.shipped``) into a folder, as the step
unpacks it into the run directory, and `argv` runs one of its modules as the step does
(``python RUN_DIR/ipp_remote MODULE ARGS``).
"""

import base64
import io
import sys
import tarfile

from tasks.commands import shipped


def unpack(step, folder, changes=()):
    """Unpack what *step* ships into *folder*; each ``(path, old, new)`` of *changes* then
    changes the text *old* of the file *path* (of the package; None: of every file that holds
    it, one at least) to *new*. The package's path."""
    data = base64.b64decode(shipped.package(step))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        # the "data" filter where this Python has it (3.11.4 on; Debian 12's is 3.11.2)
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    package = folder / shipped.PACKAGE
    for path, old, new in changes:
        files = [package / path] if path else [f for f in package.rglob("*.py") if old in f.read_text()]
        assert files and all(old in f.read_text() for f in files), (path, old)
        for file in files:
            file.write_text(file.read_text().replace(old, new))
    return package


def argv(package, module, *args, python=(sys.executable,)):
    """The command line that runs *module* of *package* (`unpack`'s) with *args*."""
    return [*python, str(package), module, *map(str, args)]
