"""
A real Slurm on the fake SSH hosts (`tests.sshhosts`): the harness of the Slurm tests and of
``python -m bench --slurm``.

Debian's ``slurmctld``, ``slurmd`` and ``munge``, no systemd: one ``munged`` on this machine
(its socket in a folder of the test's own), ``slurmctld`` in the namespaces of the fake host
that plays the login node (host1 by default: its hostname is the ``SlurmctldHost``), and one
``slurmd -N hostN`` in each node host's namespaces, with a port of its own (they share this
machine's network) and ``SlurmdParameters=config_overrides`` (they share its cores). Every
fake host sees the test's ``slurm.conf`` at ``/etc/slurm``, a bind mount in its own mount
namespace, so that ``sbatch`` and ``squeue`` over SSH find it as on a real login node. A
crash of a node host (`tests.sshhosts.FakeHost.crash`) kills its ``slurmd`` too. Needs root.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PROGRAMS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch")
CONTROLLER_PORT = 16817  # the node ports follow: 16820 + N (the suite's own are 18800-18999)

SLURM_CONF = """\
ClusterName=fake
SlurmctldHost={controller}({address})
SlurmctldPort={port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd-%n.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdTimeout=30
KillWait=30
MinJobAge=300
{nodes}
{partitions}
"""


def why_not_available():
    """The reason a Slurm cannot run here, or None when it can."""
    missing = [program for program in PROGRAMS if not os.path.exists(program)]
    if missing:
        return f"missing {', '.join(missing)}: install slurmctld, slurmd, slurm-client and munge"
    return None


class FakeSlurm:
    """
    Slurm on *fake_hosts* (a started `tests.sshhosts.FakeHosts`): its controller on host
    number *controller*, a node of *cpus* CPUs on each host of *nodes* (numbers), all in
    one partition, *partition*, of at most *max_time* minutes. Use as a context manager.

    A site of more than one kind of node: *partitions* (``{name: host numbers}``, the first
    the default) instead of *nodes*; *features* (``{host number: "avx2,..."}``) the nodes'
    features; *gpus* (``{host number: count}``) their GPUs, as GRES ``gpu`` with a device
    file each (a plain file: Slurm binds them by index, and sets ``CUDA_VISIBLE_DEVICES``).
    """

    def __init__(self, fake_hosts, controller=1, nodes=(2, 3, 4, 5), cpus=2, partition="cpu",
                 max_time=60, partitions=None, features=None, gpus=None):
        partitions = partitions or {partition: nodes}
        self.fake_hosts, self.partition = fake_hosts, next(iter(partitions))
        self.controller = fake_hosts.hosts[controller - 1]
        number = dict(enumerate(fake_hosts.hosts, start=1))  # a host's place in fake_hosts
        places = list(dict.fromkeys(n for numbers in partitions.values() for n in numbers))
        self.nodes = [number[n] for n in places]
        self.folder = Path(tempfile.mkdtemp(prefix="fakeslurm-"))
        os.chmod(self.folder, 0o755)  # users' jobs read the config, munged's socket
        (self.folder / "etc").mkdir()
        features, gpus, lines = features or {}, gpus or {}, []
        for n in places:
            h = number[n]
            line = (f"NodeName={h.name} NodeAddr={h.address} Port={CONTROLLER_PORT + 3 + h.number}"
                    f" CPUs={cpus} RealMemory=1000 State=UNKNOWN")
            line += f" Feature={features[n]}" if n in features else ""
            lines.append(line + (f" Gres=gpu:{gpus[n]}" if n in gpus else ""))
        if gpus:
            lines.insert(0, "GresTypes=gpu")
            (self.folder / "etc" / "gres.conf").write_text("".join(
                f"NodeName={number[n].name} Name=gpu File={self._devices(number[n], count)}\n"
                for n, count in gpus.items()))
        (self.folder / "etc" / "slurm.conf").write_text(SLURM_CONF.format(
            controller=self.controller.name, address=self.controller.address,
            port=CONTROLLER_PORT, folder=self.folder, nodes="\n".join(lines),
            partitions="\n".join(
                f"PartitionName={name} Nodes={','.join(number[n].name for n in numbers)}"
                f"{' Default=YES' if i == 0 else ''} MaxTime={max_time} State=UP"
                for i, (name, numbers) in enumerate(partitions.items()))))
        for path in (self.folder / "etc").iterdir():
            os.chmod(path, 0o644)
        os.chmod(self.folder / "etc", 0o755)
        self.munged = None
        self.daemons = {}  # host name -> the nsenter process that started its daemon

    def _devices(self, host, count):
        """*count* stand-ins for the GPU device files of *host*; gres.conf's ``File=`` for them."""
        folder = self.folder / "dev" / host.name
        folder.mkdir(parents=True)
        for index in range(count):
            (folder / f"nvidia{index}").touch()
        return f"{folder}/nvidia[0-{count - 1}]"

    @property
    def conf(self):
        return str(self.folder / "etc" / "slurm.conf")

    def start(self, timeout=30):
        """Start munged, the controller and every node; wait until every node is idle."""
        self._start_munge()
        for host in {self.controller, *self.nodes}:
            self.mount(host)
        self.daemons[self.controller.name] = self._in(
            self.controller, ["/usr/sbin/slurmctld", "-D", "-i"], "slurmctld")
        for host in self.nodes:
            self.start_node(host)
        self.wait_idle(timeout)
        return self

    def mount(self, host):
        """Let *host* see this Slurm's configuration at /etc/slurm (its mount namespace alone)."""
        os.makedirs("/etc/slurm", exist_ok=True)
        subprocess.run(["nsenter", "-t", str(host.init_pid), "-m", "mount", "--bind",
                        str(self.folder / "etc"), "/etc/slurm"], check=True)

    def start_node(self, host):
        """Start the slurmd of *host* (again, after a crash: the host was started anew)."""
        (self.folder / "spool" / host.name).mkdir(parents=True, exist_ok=True)
        self.daemons[host.name] = self._in(host, ["/usr/sbin/slurmd", "-D", "-N", host.name],
                                           f"slurmd-{host.name}")

    def _in(self, host, argv, log):
        """Run *argv* in *host*'s namespaces (not its pid 1: sshd reaps what it leaves)."""
        return subprocess.Popen(
            ["nsenter", "-t", str(host.init_pid), "-m", "-u", "-p", "--", *argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.folder / f"{log}.stderr", "ab"), env=self.env())

    def env(self):
        return dict(os.environ, SLURM_CONF=self.conf)

    def _start_munge(self):
        munge = self.folder / "munge"
        munge.mkdir()
        key = munge / "munge.key"
        key.write_bytes(os.urandom(128))
        user = pwd.getpwnam("munge")
        for path in (munge, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(munge, 0o755)  # munged refuses a socket folder others can write to; all must reach it
        os.chmod(key, 0o400)
        self.munged = subprocess.Popen(
            ["runuser", "-u", "munge", "--", "/usr/sbin/munged", "-F", "-S", str(munge / "munge.socket"),
             f"--key-file={key}", f"--pid-file={munge}/munged.pid", f"--seed-file={munge}/seed",
             f"--log-file={munge}/munged.log"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "munged.stderr", "ab"))
        deadline = time.monotonic() + 10
        while not (munge / "munge.socket").exists():
            if time.monotonic() > deadline or self.munged.poll() is not None:
                raise RuntimeError(f"munged did not start; see {self.folder}/munged.stderr")
            time.sleep(0.05)

    def command(self, *argv, user=None, check=True):
        """Run a Slurm client command here (as *user*: a name); returns its stdout."""
        prefix = ["runuser", "-u", user, "--"] if user else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, env=self.env(),
                              check=check, timeout=30).stdout

    def node_states(self):
        """``{node name: state}`` as sinfo says them (``idle``, ``alloc``, ``down*``...)."""
        out = self.command("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def wait_idle(self, timeout=30):
        """Wait until every node is idle (or mixed/allocated: up); a RuntimeError after *timeout* s."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if len(states) == len(self.nodes) and all(s in ("idle", "mix", "alloc") for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm nodes not up after {timeout} s: {states}; see {self.folder}")
            time.sleep(0.2)

    def jobs(self, user=None):
        """The jobs in the queue (all users'), ``id|state|name|user`` lines."""
        return self.command("squeue", "-h", "-o", "%i|%T|%j|%u", check=False).split()

    def cancel_all(self):
        self.command("scancel", "--full", "--partition", self.partition, check=False)
        for job in self.jobs():
            self.command("scancel", job.split("|")[0], check=False)

    def stop(self):
        """Stop every daemon and let go of the mounts; nothing of this Slurm is left."""
        try:
            self.cancel_all()
        except (OSError, subprocess.SubprocessError):
            pass
        for host in {self.controller, *self.nodes}:
            daemon = "slurmctld" if host is self.controller else "slurmd"
            if host.process and host.process.poll() is None:
                subprocess.run(["nsenter", "-t", str(host.init_pid), "-m", "-u", "-p", "--",
                                "pkill", "-KILL", "-x", daemon], check=False)
                subprocess.run(["nsenter", "-t", str(host.init_pid), "-m", "-u", "-p", "--",
                                "pkill", "-KILL", "-x", "slurmstepd"], check=False)
                subprocess.run(["nsenter", "-t", str(host.init_pid), "-m", "umount", "/etc/slurm"],
                               check=False, stderr=subprocess.DEVNULL)
        for process in self.daemons.values():
            process.wait(timeout=10)
        if self.munged and self.munged.poll() is None:
            self.munged.terminate()
            self.munged.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
