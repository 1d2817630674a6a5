"""The one error of the inventory layer: a problem in a file, at a line."""


class InventoryError(ValueError):
    """A problem in an inventory file: carries ``path``, ``line`` and ``reason``."""

    def __init__(self, path, line, reason):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")
