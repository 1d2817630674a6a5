"""
The documentation (README.md and the site in docs/) checked against the code: the site
builds in strict mode, every command written there is a real task with real options,
every task has its section, every inventory example parses, the short README keeps
what it promises, and each former README section has its page.

The JSON documents written on the JSON page are checked against a real cluster in
`tests/test_docs_json.py`.
"""

import functools
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tasks.inventory.error import InventoryError
from tasks.inventory.folder import load_inventory
from tasks.inventory.settings import parse_settings
from tests.conftest import FAB, PROJECT

DOCS = PROJECT / "docs"
README = PROJECT / "README.md"
PAGES = sorted(DOCS.glob("*.md"))
WRITTEN = [README, *PAGES]

#: Every heading of the README before it became a site (2026-12-06): the page that holds
#: it now, and the heading it has there.
FORMER_SECTIONS = {
    "Quick start": ("getting-started.md", "Install, and a first cluster on this machine"),
    "The inventory": ("inventory.md", "The inventory"),
    "Commands": ("commands.md", "Commands"),
    "`fab cluster.up`": ("commands.md", "`fab cluster.up`"),
    "`fab cluster.down`": ("commands.md", "`fab cluster.down`"),
    "`fab cluster.status`": ("commands.md", "`fab cluster.status`"),
    "`fab cluster.restart`": ("commands.md", "`fab cluster.restart`"),
    "`fab engines.start`, `engines.stop`, `engines.restart`, `engines.status`": (
        "commands.md", "`fab engines.start`, `engines.stop`, `engines.restart`, `engines.status`"),
    "`fab master.start`, `master.stop`, `master.status`, `master.url`": (
        "commands.md", "`fab master.start`, `master.stop`, `master.status`, `master.url`"),
    "`fab -H HOST start-master`, `fab -H HOST stop-master`": (
        "commands.md", "`fab -H HOST start-master`, `fab -H HOST stop-master`"),
    "Fabric's own options": ("commands.md", "Fabric's own options"),
    "Operating a cluster": ("operating.md", "Operating a cluster"),
    "`fab cluster.run \"CMD\"`": ("commands.md", "`fab cluster.run \"CMD\"`"),
    "`fab cluster.hosts`": ("commands.md", "`fab cluster.hosts`"),
    "`fab cluster.info`": ("commands.md", "`fab cluster.info`"),
    "`fab cluster.check`": ("commands.md", "`fab cluster.check`"),
    "`fab cluster.logs`": ("commands.md", "`fab cluster.logs`"),
    "`fab cluster.tunnel`": ("commands.md", "`fab cluster.tunnel`"),
    "`fab cluster.install`": ("commands.md", "`fab cluster.install`"),
    "Progress": ("operating.md", "Progress"),
    "Shared hosts": ("operating.md", "Shared hosts"),
    "Any login shell": ("operating.md", "Any login shell"),
    "From the old scripts": ("getting-started.md", "From the old scripts"),
    "Networks: where each program listens, and the laptop": (
        "networks.md", "Networks: where each program listens, and the laptop"),
    "Notebooks": ("notebooks.md", "Notebooks"),
    "Failure and security model": ("failures.md", "When things fail"),
    "Failure and security model (its security part)": ("security.md", "Security model"),
    "When the controller or Jupyter crashes": ("failures.md", "When the controller or Jupyter crashes"),
    "The dashboard": ("dashboard.md", "The dashboard"),
    "JSON for programs": ("json.md", "JSON for programs"),
    "Speed": ("speed.md", "Speed"),
    "Engines and the hosts' resources": ("resources.md", "Engines and the hosts' resources"),
    "Hundreds of engines": ("scale.md", "Hundreds of engines"),
    "Engines in a Slurm allocation": ("slurm.md", "Engines in a Slurm allocation"),
    "How it works": ("how-it-works.md", "How it works"),
    "Tests": ("development.md", "What the tests cover"),
}


def fenced_blocks(path):
    """``(language, text)`` of each fenced code block of the Markdown file *path*."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", path.read_text(), re.M | re.S)


def headings(path):
    """``(level, text)`` of each heading of *path*, outside code blocks."""
    found, code = [], False
    for line in path.read_text().splitlines():
        code = code != line.startswith("```")
        match = None if code else re.match(r"^(#{1,6}) (.*)$", line)
        if match:
            found.append((len(match.group(1)), match.group(2).strip()))
    return found


def test_the_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=PROJECT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    built = {path.relative_to(site).as_posix() for path in site.rglob("index.html")}
    expected = {"index.html" if page.stem == "index" else f"{page.stem}/index.html" for page in PAGES}
    assert expected <= built
    home = (site / "index.html").read_text()
    assert "task library" in home and 'class="mermaid"' in home  # the README's overview, included


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The strict build is what the test above relies on: a link to a missing anchor fails it."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md"):
        (copy / name).write_text((PROJECT / name).read_text())
    (copy / "docs").symlink_to(DOCS)  # read only: mkdocs writes to the site folder alone
    config = (copy / "mkdocs.yml").read_text().replace("docs_dir: docs", "docs_dir: broken")
    (copy / "mkdocs.yml").write_text(config)
    broken = copy / "broken"
    broken.mkdir()
    for page in PAGES:
        (broken / page.name).write_text(page.read_text())
    (broken / "img").symlink_to(DOCS / "img")
    (broken / "speed.md").write_text((broken / "speed.md").read_text() + "\n[x](commands.md#no-such)\n")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=copy, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode != 0
    assert "no-such" in result.stderr


@functools.cache
def tasks():
    """Every task of ``fab --list --list-format=json``: its dotted name -> its first help line."""
    listing = json.loads(subprocess.run([str(FAB), "--list", "--list-format=json"], cwd=PROJECT,
                                        capture_output=True, text=True, check=True).stdout)
    found = {}

    def walk(collection, prefix):
        for task in collection["tasks"]:
            found[prefix + task["name"]] = task["help"] or ""
        for child in collection["collections"]:
            walk(child, prefix + child["name"] + ".")
    walk(listing, "")
    return found


def options_in(help_text):
    """``{--name: takes a value}`` of the options listed in a ``fab --help`` text."""
    found = {}
    for match in re.finditer(r"^\s+(?:-\w(?: \w+)?, )?(--[\w-]+)(=\w+|\[=\w+\])?", help_text, re.M):
        found[match.group(1)] = bool(match.group(2))
    return found


@functools.cache
def task_options(task):
    """The options of *task*, from ``fab --help TASK``."""
    help_text = subprocess.run([str(FAB), "--help", task], cwd=PROJECT, capture_output=True, text=True,
                               check=True).stdout
    return options_in(help_text.partition("Options:")[2])


@functools.cache
def core_options():
    """Fabric's own options (``fab --help``), long and short: ``{flag: takes a value}``."""
    help_text = subprocess.run([str(FAB), "--help"], cwd=PROJECT, capture_output=True, text=True,
                               check=True).stdout
    found = {}
    for match in re.finditer(r"^\s+(?:(-\w)(?: \[?\w+\]?)?, )?(--[\w-]+)(=\w+|\[=\w+\])?", help_text,
                             re.M):
        takes = bool(match.group(3)) and not match.group(3).startswith("[")
        found[match.group(2)] = takes
        if match.group(1):
            found[match.group(1)] = takes
    return found


def inline_code(text):
    """The inline code spans of Markdown *text* (fenced blocks left out), each on one line."""
    prose = re.sub(r"^```\w*\n.*?^```$", "", text, flags=re.M | re.S)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def written_commands():
    """Each ``fab ...`` command line written in the README and the pages: ``(file, tokens)``."""
    for path in WRITTEN:
        text = path.read_text()
        code = inline_code(text) + [
            block for language, block in fenced_blocks(path) if language != "mermaid"]
        for snippet in code:
            for line in snippet.splitlines():
                for match in re.finditer(r"(?:^|[\s(<;])(?:\$ )?fab((?: [^|;&#)>]*)?)", line):
                    rest = match.group(1).strip()
                    try:
                        words = shlex.split(rest)
                    except ValueError:
                        words = rest.split()
                    yield path.name, [word.rstrip(",.:") for word in words]


def is_placeholder(word):
    return word in ("...", "TASK") or word.isupper()


def test_every_fab_command_written_is_a_task_with_those_options():
    checked, wrong = 0, []
    core = core_options()
    for where, words in written_commands():
        index = 0
        while index < len(words) and words[index].startswith("-"):  # Fabric's own options
            flag = words[index].split("=")[0]
            if flag not in core:
                wrong.append(f"{where}: fab {' '.join(words)}: {flag} is not an option of fab")
            index += 2 if core.get(flag) and "=" not in words[index] else 1
        if index >= len(words) or is_placeholder(words[index]):
            continue
        task = words[index]
        if task not in tasks():
            wrong.append(f"{where}: fab {' '.join(words)}: no task {task!r}")
            continue
        options = task_options(task)
        for word in words[index + 1:]:
            if word.startswith("--"):
                name = word.split("=")[0]
                if name not in options:
                    wrong.append(f"{where}: fab {' '.join(words)}: {task} has no option {name}")
            elif word in tasks():
                options = task_options(word)
        checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked > 100  # the scan reads the commands written, not nothing


def test_the_completion_scripts_the_docs_name_are_printed():
    assert "fab --print-completion-script bash" in (DOCS / "commands.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        result = subprocess.run([str(FAB), "--print-completion-script", shell], cwd=PROJECT,
                                capture_output=True, text=True)
        assert result.returncode == 0 and "fab" in result.stdout, result.stderr


def sections(path):
    """``{heading: its text, its subsections included}`` of *path*."""
    lines = path.read_text().splitlines()
    found, code, starts = {}, False, []
    for number, line in enumerate(lines):
        code = code != line.startswith("```")
        match = None if code else re.match(r"^(#{1,6}) (.*)$", line)
        if match:
            starts.append((number, len(match.group(1)), match.group(2).strip()))
    for position, (number, level, heading) in enumerate(starts):
        end = next((n for n, lvl, _ in starts[position + 1:] if lvl <= level), len(lines))
        found[heading] = "\n".join(lines[number:end])
    return found


def test_every_task_has_a_section_naming_its_options_and_a_sentence_in_fab_l():
    commands = sections(DOCS / "commands.md")
    missing = []
    for task, help_line in tasks().items():
        own = [heading for heading in commands if re.search(rf"`fab (-H HOST )?{re.escape(task)}( [^`]*)?`", heading)]
        if not own:
            missing.append(f"{task}: no heading `fab {task}` on the commands page")
            continue
        text = commands[min(own, key=lambda heading: len(commands[heading]))]  # its own, the deepest
        synopsis = re.search(r"^Options: (.*?)\. Exit: ", text, re.M | re.S)
        if not synopsis:
            missing.append(f"{task}: its section has no line 'Options: ... Exit: ...'")
            continue
        written = set(re.findall(r"`(--[\w-]+)", synopsis.group(1)))
        real = set(task_options(task))
        if written != real:
            missing.append(f"{task}: its Options line names {sorted(written)}, fab --help {task} "
                           f"{sorted(real)}")
        if not re.fullmatch(r"[A-Z].{10,120}[.)]", help_line):  # what fab -l shows: a whole sentence
            missing.append(f"{task}: its first docstring line is not one sentence: {help_line!r}")
    assert not missing, "\n".join(missing)


def test_the_version_written_in_the_docs_is_the_projects():
    from tasks import __version__
    written = [(path.name, found) for path in WRITTEN for found in re.findall(
        r'ipp-cluster (\d+\.\d+\.\d+)|"version": "([^"]+)"', path.read_text())]
    assert written, "the docs show the version (cluster.info) somewhere"
    assert all(__version__ in found for _, found in written), written


def inventory_examples():
    """Each hosts-file example in the README and the pages: ``(where, file name, text)``."""
    names = {"ini": "hosts", "yaml": "hosts.yml", "json": "hosts.json"}
    for path in WRITTEN:
        for number, (language, text) in enumerate(fenced_blocks(path)):
            if language in ("ini", "yaml") or (language == "json" and '"_meta"' in text):
                yield f"{path.name}, block {number + 1}", names[language], text


def settings_examples():
    """Each ``cluster.env`` example (a block that starts ``# inventory/cluster.env``)."""
    for path in WRITTEN:
        for number, (_, text) in enumerate(fenced_blocks(path)):
            if text.startswith("# inventory/cluster.env"):
                yield f"{path.name}, block {number + 1}", text


def test_every_inventory_example_parses_with_the_projects_reader(tmp_path):
    examples = list(inventory_examples())
    assert {name for _, name, _ in examples} == {"hosts", "hosts.yml", "hosts.json"}
    problems = []
    for number, (where, name, text) in enumerate(examples):
        folder = tmp_path / str(number)
        folder.mkdir()
        (folder / name).write_text(text)
        (folder / "cluster.env").write_text("")
        try:
            inventory = load_inventory(folder)
        except InventoryError as error:
            problems.append(f"{where}: {error}")
            continue
        if not inventory.engines and not inventory.allocations:
            problems.append(f"{where}: no engine host nor allocation read")
    assert not problems, "\n".join(problems)
    settings = list(settings_examples())
    assert settings
    for where, text in settings:
        try:
            parse_settings(text, where)
        except InventoryError as error:
            pytest.fail(f"{where}: {error}")


def test_a_broken_inventory_example_would_be_caught(tmp_path):
    """What the test above relies on: the reader refuses what a page could get wrong."""
    (tmp_path / "hosts").write_text("[master]\nhead\n\n[engines]\nnode[05:01]\n")
    (tmp_path / "cluster.env").write_text("")
    with pytest.raises(InventoryError, match="hosts:5"):
        load_inventory(tmp_path)


def test_the_readme_is_short_and_keeps_its_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    command = re.search(r"<!-- test-command -->\n```sh\n(.*)\n```\n<!-- /test-command -->", text).group(1)
    assert command == "sh install.sh --test && . .venv/bin/activate && python -m tests.suite"
    assert command in (DOCS / "development.md").read_text()
    quick = "sh install.sh\n. .venv/bin/activate && fab cluster.up\n"
    assert quick in text and quick in (DOCS / "getting-started.md").read_text()
    assert "pip install -r requirements-docs.txt && mkdocs serve" in text
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):  # every link to a file of ours
        assert (PROJECT / target).exists(), target


def test_every_page_is_in_the_readmes_map_and_every_former_section_has_a_page():
    readme = README.read_text()
    for page in PAGES:
        if page.stem not in ("index", "changelog"):
            assert f"](docs/{page.name})" in readme, f"the README's map lacks {page.name}"
    for former, (page, heading) in FORMER_SECTIONS.items():
        assert heading in [text for _, text in headings(DOCS / page)], (
            f"the former README section {former!r}: no heading {heading!r} in docs/{page}")


def test_jupyter_is_reached_one_way_with_urls_that_work():
    """From another machine, Jupyter is reached with `fab cluster.tunnel` alone (no page tells
    to forward a port with `ssh -L PORT:...`, but the old scripts' column of the table that
    maps them), and every URL written is one of 127.0.0.1, where Jupyter and the tunnel
    listen (a browser may try [::1] for localhost, where any user of the machine may listen)."""
    wrong = []
    for path in WRITTEN:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            old_scripts_row = line.startswith("| `ssh -L") and line.endswith("| `fab cluster.tunnel` "
                                                                              "(prints the URL with its token) |")
            if re.search(r"ssh -L \S*\d:", line) and not old_scripts_row:
                wrong.append(f"{path.name}:{number}: {line.strip()}")
            if re.search(r"https?://(localhost|\[::1\])", line):
                wrong.append(f"{path.name}:{number}: {line.strip()}")
    assert not wrong, "\n".join(wrong)
