"""
What is true on a host: the commands that read it, and the pure functions that judge it.

`facts` reads, in one round trip, everything ``cluster.info`` shows and
``cluster.check`` needs; `problems` compares one host's facts with the master's
and says what is wrong and what to do about it.
"""

from . import commands

# Prints key=value facts about the host and CLUSTER_ENV. The Python part reads
# versions from package metadata, which is much faster than importing them.
_FACTS = r"""
echo "cores=$(nproc)"
awk '/^MemTotal:/ {print "mem_total_kb=" $2} /^MemAvailable:/ {print "mem_available_kb=" $2}' /proc/meminfo
echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "users=$(who 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')"
command -v screen >/dev/null && echo screen=yes || echo screen=no
missing=
for program in ipcontroller ipengine jupyter; do
  if [ -n "$bin" ]; then [ -x "$bin$program" ] || missing="$missing $program"
  else command -v "$program" >/dev/null || missing="$missing $program"; fi
done
echo "missing=$missing"
"""

_VERSIONS = ("import sys, importlib.metadata as m\n"
             "print('python=%d.%d.%d' % sys.version_info[:3])\n"
             "for name in ('ipyparallel', 'jupyter_server'):\n"
             "    try: print(name + '=' + m.version(name))\n"
             "    except m.PackageNotFoundError: print(name + '=')\n")


def facts(settings):
    """The command part that prints a host's facts (``cores=``, ``python=``, ...)."""
    python = commands.python(settings)
    return "\n".join([
        _FACTS,
        f'if {commands.q(python)} -c "" 2>/dev/null; then',
        f"  {commands.q(python)} -c {commands.q(_VERSIONS)}",
        "else echo python=; fi",
    ])


def _minor(version):
    return ".".join(version.split(".")[:2])


def problems(facts_, master_facts, settings):
    """
    What is wrong on a host, each with what to do about it, given its facts and the master's.

    Python must match the master's to the minor version and ipyparallel exactly:
    a mismatch makes engines fail in obscure ways.
    """
    where = settings.cluster_env or "the PATH"
    found = []
    if facts_.get("screen") != "yes":
        found.append("screen is not installed: install it (apt-get install screen)")
    if not facts_.get("python"):
        found.append(f"no Python in {where}: run fab cluster.install")
    missing = facts_.get("missing", "").split()
    if missing:
        found.append(f"{', '.join(missing)} missing from {where}: run fab cluster.install")
    python, master_python = facts_.get("python", ""), master_facts.get("python", "")
    if python and master_python and _minor(python) != _minor(master_python):
        found.append(f"Python {python} here but {master_python} on the master: "
                     "use the same Python minor version on every host")
    ipp, master_ipp = facts_.get("ipyparallel", ""), master_facts.get("ipyparallel", "")
    if python and not ipp:
        found.append(f"ipyparallel is not installed in {where}: run fab cluster.install")
    elif ipp and master_ipp and ipp != master_ipp:
        found.append(f"ipyparallel {ipp} here but {master_ipp} on the master: "
                     "install the same version everywhere (fab cluster.install)")
    return found
