"""
What a host's engines are asked to do while their supervisor (``supervisor.py``) runs:
the lines that steps append to ``NAME-engines.requests``, read as the file grows (never
a line still being written):

- ``renew N``: start engine N again at once (the controller dropped its registration;
  ``renew_engines.sh``);
- ``start``: start the engines that are stopped or gave up (``start_engines.sh``, with a
  supervisor that runs with the same plan).

Any other line is skipped. The supervisor acts on what `Requests.read` returns.
"""


class Requests:
    """The requests file at *path*, read from where the last `read` stopped."""

    def __init__(self, path):
        self.path, self.at = path, 0

    def read(self):
        """The requests of the whole lines added since the last read: ``("start", None)``
        or ``("renew", N)``."""
        try:
            with open(self.path, "rb") as requests:
                requests.seek(self.at)
                text = requests.read()
        except OSError:
            return []
        text = text[:text.rfind(b"\n") + 1]  # a line still being written waits
        self.at += len(text)
        found = []
        for words in (line.split() for line in text.decode(errors="replace").splitlines()):
            if words[:1] == ["start"]:
                found.append(("start", None))
            elif words[:1] == ["renew"] and words[1:] and words[1].isdigit():
                found.append(("renew", int(words[1])))
        return found
