"""
Where the benchmark's tables go: its output folder, and the documentation page that holds
the markers of each table (``<!-- bench-NAME -->``), where ``--docs`` writes them.
"""

import json

from . import methods, report

DOCS = methods.PROJECT / "docs"


def markers(name):
    """The markers around the tables of *name* (``results``, ``scale``...) in a docs page."""
    return f"<!-- bench-{name} -->\n", f"<!-- /bench-{name} -->\n"


def page_of(name):
    """The documentation page that holds the markers of *name*."""
    first, _ = markers(name)
    pages = [page for page in sorted(DOCS.glob("*.md")) if first in page.read_text()]
    if len(pages) != 1:
        raise LookupError(f"{len(pages)} pages of docs/ hold {first.strip()}; one must")
    return pages[0]


def write_docs(text, name="results"):
    """Put *text* between the markers of *name* in the documentation page that holds them."""
    page, (first, last) = page_of(name), markers(name)
    old = page.read_text()
    page.write_text(old[:old.index(first) + len(first)] + text + old[old.index(last):])


def publish(out, name, text, data, into_docs):
    """Print *text* and write it to *out*/NAME.md, *data* (and the machine) to NAME.json
    and, *into_docs*, the text into the documentation between the markers of *name*."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps({"machine": report.machine(), **data}, indent=1))
    if into_docs:
        write_docs(text, name)
    print(text)
