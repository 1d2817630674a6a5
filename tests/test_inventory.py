"""Unit tests for the inventory parser: what it reads, and each error it gives."""

import subprocess
import tracemalloc

import pytest

from tests.conftest import PROJECT

from tasks.inventory.folder import (
    Host,
    InventoryError,
    Settings,
    load_inventory,
    parse_hosts,
    parse_settings,
)

GOOD_HOSTS = """\
# a comment
[master]
master-host

[engines]
node01 engines=8
alice@node02:2222 engines=4   # trailing comment
node03
"""


def test_reads_roles_users_ports_and_engine_counts():
    master, engines = parse_hosts(GOOD_HOSTS)
    assert master == Host("master-host", "master-host")
    assert engines == (
        Host("node01", "node01", engines=8),
        Host("alice@node02:2222", "node02", user="alice", port=2222, engines=4),
        Host("node03", "node03"),
    )


ANSIBLE = """\
[master]
head ansible_host=10.0.0.1 ansible_user=admin

[cpu_nodes]
node[01:03]
node[10:20:5] engines=4
alice@node99:2200

[gpu_nodes]
gpu-[a:b]-[1:2] ansible_port=2222 ansible_python_interpreter=/usr/bin/python3

[old_gpus]
gpu-a-1

[gpu_nodes:children]
old_gpus

[engines:children]
cpu_nodes
gpu_nodes

[all:vars]
ansible_user=lab
engines=2
ansible_become=true

[engines:vars]
engines=8
ansible_ssh_private_key_file=~/.ssh/lab_key

[gpu_nodes:vars]
engines=1
ansible_user=gpu

[old_gpus:vars]
engines=3
"""


def test_an_ansible_inventory_with_ranges_children_and_variables():
    warnings = []
    master, engines = parse_hosts(ANSIBLE, "inv/hosts", warnings)
    assert master == Host("head", "10.0.0.1", user="admin", engines=2)
    key = "~/.ssh/lab_key"
    cpu = [Host(f"node{n}", f"node{n}", user="lab", engines=8, key=key) for n in ("01", "02", "03")]
    cpu += [Host(f"node{n}", f"node{n}", user="lab", engines=4, key=key) for n in (10, 15, 20)]
    cpu += [Host("alice@node99:2200", "node99", user="alice", port=2200, engines=8, key=key)]
    gpus = [Host(f"gpu-{r}-{n}", f"gpu-{r}-{n}", user="gpu", port=2222, engines=1, key=key)
            for r in "ab" for n in (1, 2)]
    gpus[0] = Host("gpu-a-1", "gpu-a-1", user="gpu", port=2222, engines=3, key=key)  # deepest group
    assert engines == (*cpu, *gpus)
    assert warnings == ["inv/hosts: ignored (they mean nothing here): ansible_become, "
                        "ansible_python_interpreter"]


def test_a_range_pads_as_written_and_letters_and_ipv6_work():
    _, engines = parse_hosts("[master]\nm\n[engines]\nn[8:10]\nn[008:010]\nr[A:C:2]\nroot@[fe80::1]:22\n")
    assert [h.name for h in engines] == ["n8", "n9", "n10", "n008", "n009", "n010", "rA", "rC",
                                         "root@[fe80::1]:22"]


def test_localhost_is_local_and_other_names_are_not():
    master, engines = parse_hosts("[master]\nlocalhost\n[engines]\nroot@localhost\n")
    assert master.is_local and not engines[0].is_local


@pytest.mark.parametrize("text, line, reason", [
    ("[master]\nm\n[engines]\nnode01 engines=abc\n", 4,
     "engines='abc' must be a whole number of at least 1"),
    ("[master]\nm\n[engines]\nnode01 engines=0\n", 4,
     "engines='0' must be a whole number of at least 1"),
    ("[master]\nm\n[engines]\nnode01 cores=2\n", 4,
     "unknown host setting 'cores=2' (known: engines=N, threads=N, gpus=auto|0,1, setup=SNIPPET,"
     " ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file)"),
    ("[master]\nm\n[engines:vars]\ncores=2\n[engines]\nn1\n", 4,
     "unknown group variable 'cores=2' (known: engines=N, threads=N, gpus=auto|0,1, setup=SNIPPET,"
     " ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file)"),
    ("[master]\nm\n[engines]\nn1 threads=0\n", 4,
     "threads='0' must be a whole number of at least 1"),
    ("[master]\nm\n[engines]\nn1 gpus=all\n", 4,
     "gpus='all' must be auto or GPU indexes such as 0,2 (each once)"),
    ("[master]\nm\n[engines]\nn1 gpus=0,1,0\n", 4,
     "gpus='0,1,0' must be auto or GPU indexes such as 0,2 (each once)"),
    ("[master]\nm\n[engines:vars]\nsetup=''\n[engines]\nn1\n", 4,
     "setup=\"''\" must be a shell snippet, such as setup='module load python/3.11'"),
    ("[master]\nm gpus=auto\n", 2, "gpus= belongs under [engines], not [master]"),
    ("[master]\nm\n[engines]\nnode[05:01]\n", 4,
     "bad range [05:01] in 'node[05:01]': its start is after its end"),
    ("[master]\nm\n[engines]\nnode[01:x]\n", 4, "bad range [01:x] in 'node[01:x]': expected "
     "[START:END] or [START:END:STEP], of numbers or single letters"),
    ("[master]\nm\n[engines]\nnode[1:9:0]\n", 4,
     "bad range [1:9:0] in 'node[1:9:0]': its step must be a whole number of at least 1"),
    ("[master]\nm\n[engines]\nnode[1:20000]\n", 4,
     "'node[1:20000]' makes 20000 hosts; at most 10000 in one line"),
    ("[master]\nm\n[engines]\nr[a:z]-n[1:400]\n", 4,
     "'r[a:z]-n[1:400]' makes 10400 hosts; at most 10000 in one line"),
    ("[master]\nm\n[engines:children]\ngpu\n[gpu:children]\nengines\n", 6,
     "group 'engines' is its own child: engines -> gpu -> engines"),
    ("[master]\nm\n[gpu:children]\ngpu\n", 4, "group 'gpu' is its own child: gpu -> gpu"),
    ("[master]\nm\n[gpus:vars]\nengines=2\n", 3,
     "[gpus:vars] is for an unknown group 'gpus': no [gpus] or [gpus:children] section names it"),
    ("[master]\nm\n[engines]\nn1 ansible_port=0\n", 4,
     "ansible_port='0' must be a port number from 1 to 65535"),
    ("[master]\nm\n[engines]\nn1 ansible_user=a;b\n", 4, "ansible_user='a;b' is not a valid user"),
    ("[master]\nm\n[engines]\nn1 ansible_host=$(id)\n", 4,
     "ansible_host='$(id)' is not a valid host"),
    ("[master]\nm\n[engines]\nn1 'unclosed\n", 4,
     "cannot parse \"n1 'unclosed\": No closing quotation"),
    ("[master]\nm\n[engines:extra]\n", 3,
     "bad section '[engines:extra]': expected [GROUP], [GROUP:vars] or [GROUP:children]"),
    ("[master]\nm\n[engines]\nnode01\nnode01 engines=2\n", 5, "duplicate host 'node01' in [engines]"),
    ("[engines]\nnode01\n", 0, "no [master] section with a host"),
    ("[master]\nm\n[master:children]\nheads\n[heads]\nh1\n", 6, "[master] must hold exactly one host"),
    ("node01\n[master]\nm\n", 1, "'node01' is outside a section: put it under [master] or [engines]"),
    ("[master]\nm1\nm2\n", 3, "[master] must hold exactly one host"),
    ("[master]\nm engines=2\n", 2, "engines= belongs under [engines], not [master]"),
    ("[master]\nnode01:70000\n", 2, "port 70000 of 'node01:70000' is out of range (1-65535)"),
    ("[master]\nnode;rm\n", 2, "bad host 'node;rm': expected [user@]host[:port] "
                               "with letters, digits, '.', '-' or '_'"),
    ("[master]\nno$(id)de\n", 2, "bad host 'no$(id)de': expected [user@]host[:port] "
                                 "with letters, digits, '.', '-' or '_'"),
])
def test_each_bad_hosts_line_names_file_line_and_problem(text, line, reason):
    with pytest.raises(InventoryError) as error:
        parse_hosts(text, "inv/hosts")
    assert (error.value.path, error.value.line, error.value.reason) == ("inv/hosts", line, reason)
    assert str(error.value) == (f"inv/hosts:{line}: {reason}" if line else f"inv/hosts: {reason}")


def test_threads_gpus_and_setup_come_from_the_host_its_groups_or_cluster_env(tmp_path):
    hosts = ("[master]\nhead\n[engines:children]\ngpu\ncpu\n[gpu]\ng1 gpus=auto\ng2 gpus=0,2 threads=4\n"
             "[cpu]\nc1 setup='conda activate lab'\nc2\n[gpu:vars]\nsetup=\"module load cuda/12 python/3.11\"\n"
             "[all:vars]\nthreads=2\n")
    (tmp_path / "hosts").write_text(hosts)
    (tmp_path / "cluster.env").write_text("SETUP='module load python/3.11'\nENGINE_THREADS=3\n")
    inventory = load_inventory(tmp_path)
    got = {h.name: (h.gpus, h.threads, h.setup) for h in inventory.hosts}
    assert got == {"head": (None, 2, "module load python/3.11"),
                   "g1": ("auto", 2, "module load cuda/12 python/3.11"),
                   "g2": ("0,2", 4, "module load cuda/12 python/3.11"),
                   "c1": (None, 2, "conda activate lab"),
                   "c2": (None, 2, "module load python/3.11")}
    (tmp_path / "hosts").write_text("[master]\nhead\n[engines]\nc1\n")
    inventory = load_inventory(tmp_path)
    assert (inventory.engines[0].threads, inventory.engines[0].setup) == (3, "module load python/3.11")
    (tmp_path / "cluster.env").write_text("")
    inventory = load_inventory(tmp_path)
    assert (inventory.engines[0].threads, inventory.engines[0].setup) == (None, "")


def test_settings_defaults_and_values():
    assert parse_settings("") == Settings()
    text = ("CLUSTER_ENV=/opt/env/\nCLUSTER_NAME=lab\nIPP_PROFILE=lab\n"
            "JUPYTER_PORT=9999\nENGINE_TIMEOUT=30\n# comment\nexport PARALLEL=8\n")
    settings = parse_settings(text)
    assert settings == Settings(cluster_env="/opt/env", cluster_name="lab", ipp_profile="lab",
                                jupyter_port=9999, engine_timeout=30.0, parallel=8)
    assert settings.bin_prefix == "/opt/env/bin/"
    assert Settings().bin_prefix == ""


def test_cluster_env_under_the_home_is_expanded_by_each_host_itself():
    """``CLUSTER_ENV=~/...`` (a user who is not root writes only under their home) reaches
    the hosts as it is written; ``setup`` in ``lib.sh`` expands it with that host's $HOME,
    as a value, never by a shell's eval."""
    settings = parse_settings("CLUSTER_ENV=~/ipp env/\n".replace(" ", "-"))
    assert (settings.cluster_env, settings.bin_prefix) == ("~/ipp-env", "~/ipp-env/bin/")
    lib = (PROJECT / "tasks" / "remote" / "steps" / "lib.sh").read_text()
    for home in ("/home/lab", "/home/a b$(touch x)"):
        done = subprocess.run(["sh", "-c", lib + 'setup n p "$1" 5 ""; printf "%s|%s" "$bin" "$python"', "sh",
                               settings.bin_prefix], capture_output=True, text=True, env={"HOME": home}, cwd="/")
        assert done.stdout == f"{home}/ipp-env/bin/|{home}/ipp-env/bin/python", done.stderr


@pytest.mark.parametrize("text, line, reason", [
    ("A=1\n", 1, "unknown setting 'A'; known: CLUSTER_ENV, CLUSTER_NAME, IPP_PROFILE, "
                 "JUPYTER_PORT, ENGINE_TIMEOUT, CONNECT_TIMEOUT, PARALLEL, ENCRYPT, KNOWN_HOSTS, "
                 "HOST_KEY_CHECKING, SHARED_HOME, NOTEBOOK_DIR, CONTROLLER_ADDRESS, ENGINE_RESTART, MEMORY_LIMIT, "
     "ENGINE_THREADS, SETUP, SLURM_WAIT, CONTROLLER_PORTS, "
     "CONTROLLER_INTERFACE"),
    ("CONTROLLER_ADDRESS=master\n", 1,
     "CONTROLLER_ADDRESS='master' must be an IPv4 address of the master (or empty)"),
    ("ENCRYPT=maybe\n", 1, "ENCRYPT='maybe' must be yes or no"),
    ("ENGINE_THREADS=0\n", 1, "ENGINE_THREADS='0' must be a number from 1 to 4096"),
    ("MEMORY_LIMIT=lots\n", 1, "MEMORY_LIMIT='lots' must be a size such as 4G or 512M, auto, or empty"),
    ("MEMORY_LIMIT=0G\n", 1, "MEMORY_LIMIT='0G' must be a size such as 4G or 512M, auto, or empty"),
    ("HOST_KEY_CHECKING=no\n", 1, "HOST_KEY_CHECKING='no' must be accept-new or strict"),
    ("KNOWN_HOSTS=known\n", 1, "KNOWN_HOSTS='known' must be an absolute path (or start with ~)"),
    ("\n\nCLUSTER_ENV=env\n", 3,
     "CLUSTER_ENV='env' must be an absolute path or one under ~/, of letters, digits and ._/+@-"
     " (or empty)"),
    ("CLUSTER_ENV=/opt/env; touch /tmp/pwned\n", 1,
     "CLUSTER_ENV='/opt/env; touch /tmp/pwned' must be an absolute path or one under ~/, of"
     " letters, digits and ._/+@- (or empty)"),
    ("CLUSTER_ENV=~lab/env\n", 1,
     "CLUSTER_ENV='~lab/env' must be an absolute path or one under ~/, of letters, digits and"
     " ._/+@- (or empty)"),
    ("CLUSTER_ENV=~/\n", 1,
     "CLUSTER_ENV='~/' must be an absolute path or one under ~/, of letters, digits and ._/+@-"
     " (or empty)"),
    ("JUPYTER_PORT=http\n", 1, "JUPYTER_PORT='http' must be a number from 1 to 65535"),
    ("JUPYTER_PORT=0\n", 1, "JUPYTER_PORT='0' must be a number from 1 to 65535"),
    ("CLUSTER_NAME=a b\n", 1, "CLUSTER_NAME='a b' must be letters, digits, '_' or '-'"),
    ("# ok\nthis is not a setting\n", 2, "cannot parse 'this is not a setting': expected KEY=VALUE"),
])
def test_each_bad_setting_names_file_line_and_problem(text, line, reason):
    with pytest.raises(InventoryError) as error:
        parse_settings(text, "inv/cluster.env")
    assert (error.value.line, error.value.reason) == (line, reason)


def test_load_reads_the_folder_and_the_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "hosts").write_text(GOOD_HOSTS)
    (tmp_path / "cluster.env").write_text("JUPYTER_PORT=9000\n")
    monkeypatch.setenv("CLUSTER_INVENTORY", str(tmp_path))
    inventory = load_inventory()
    assert inventory.settings.jupyter_port == 9000
    assert [h.name for h in inventory.hosts] == ["master-host", "node01", "alice@node02:2222", "node03"]


def test_missing_folder_and_missing_hosts_file_are_errors(tmp_path):
    with pytest.raises(InventoryError, match="inventory folder does not exist"):
        load_inventory(tmp_path / "nope")
    with pytest.raises(InventoryError, match="hosts: missing: the inventory needs a hosts file"):
        load_inventory(tmp_path)


def test_shipped_inventory_is_a_local_cluster():
    inventory = load_inventory(load_inventory.__globals__["DEFAULT_DIR"])
    assert inventory.master.is_local and [h.name for h in inventory.engines] == ["localhost"]
    assert inventory.settings == Settings()


def test_the_dotenv_parser_we_rely_on_still_gives_keys_values_lines_and_errors():
    """`dotenv.parser.parse_stream` is not python-dotenv's public API (it is the only one that
    gives line numbers); requirements.txt pins the major version, and this fails loudly if the
    parser changes within it."""
    import io

    from dotenv.parser import parse_stream
    bindings = list(parse_stream(io.StringIO("# c\n\nA=1\nB='two words'\nnot a binding\n")))
    assert [(b.key, b.value, b.original.string, b.original.line, b.error) for b in bindings] == [
        (None, None, "# c\n", 1, False), ("A", "1", "\nA=1\n", 2, False),  # a blank line leads
        ("B", "two words", "B='two words'\n", 4, False), (None, None, "not a binding\n", 5, True)]


@pytest.mark.parametrize("value, stored", [("4G", str(4 << 30)), ("512M", str(512 << 20)),
                                           ("1.5GiB", str(3 << 29)), ("auto", "auto"), ("", "")])
def test_memory_limit_is_a_size_in_bytes_or_auto(value, stored):
    assert parse_settings(f"MEMORY_LIMIT={value}\n").memory_limit == stored


def test_a_huge_range_is_counted_and_refused_before_any_name_is_made():
    from tasks.inventory.ranges import RangeError, expand
    tracemalloc.start()
    try:
        with pytest.raises(RangeError, match=r"'n\[1:5000000\]' makes 5000000 hosts; at most 10000"):
            expand("n[1:5000000]")
        with pytest.raises(RangeError, match="makes 1000000000 hosts"):
            expand("n[1:1000000000]")  # built first, it ran out of memory
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # 300 MB when the names were built before the count
    assert expand("n[08:10]") == ["n08", "n09", "n10"] and expand("x[a:e:2]") == ["xa", "xc", "xe"]


def test_ranges_and_values_are_read_as_ansible_reads_them_or_refused_saying_so():
    from tasks.inventory.ranges import RangeError, expand
    assert expand("n[:2]") == ["n0", "n1", "n2"]  # an empty start is 0
    assert expand("r[y:B]") == ["ry", "rz", "rA", "rB"]  # a-z, then A-Z
    with pytest.raises(RangeError, match=r"^bad range \[01:100\] in 'node\[01:100\]': a start padded"
                                         r" with zeros needs an end of its width \(2 digits\), as Ansible"):
        expand("node[01:100]")
    with pytest.raises(RangeError, match="its end is missing"):
        expand("n[1:]")
    master, engines = parse_hosts("[master]\nm\n[engines]\nn1\nn2 engines=3\n[engines:vars]\n"
                                  "engines=\"8\"   # a note\nsetup='module load x'\n"
                                  "[all:vars]\nengines=2 # Ansible: 2\n")
    assert [(h.engines, h.setup) for h in engines] == [(8, "module load x"), (3, "module load x")]
    assert master.engines == 2


@pytest.mark.parametrize("names, chosen", [
    (["node[1:3]"], ["node1", "node2", "node3"]),  # Ansible's range: every name of it
    (["node[2:3]", "node1"], ["node1", "node2", "node3"]),
    (["node[13]"], ["node1", "node3"]),  # a shell pattern's class
    (["node*"], ["node1", "node2", "node3", "node4"]),
])
def test_hosts_are_chosen_by_name_pattern_or_ansible_range(tmp_path, names, chosen):
    inventory = _four_nodes(tmp_path)
    assert [host.name for host in inventory.select("engines", names)] == chosen


def test_a_range_naming_a_host_not_in_the_inventory_is_refused_not_shortened(tmp_path):
    inventory = _four_nodes(tmp_path)
    with pytest.raises(ValueError, match="not in the inventory: node5"):
        inventory.select("engines", ["node[3:5]"])
    with pytest.raises(ValueError, match="its start is after its end"):
        inventory.select("engines", ["node[3:1]"])


def _four_nodes(tmp_path):
    (tmp_path / "hosts").write_text("[master]\nm\n[engines]\nnode[1:4]\n")
    (tmp_path / "cluster.env").write_text("")
    return load_inventory(tmp_path)
