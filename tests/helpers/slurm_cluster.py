"""A one-node SLURM cluster for the tests, from Debian's packages (slurm-wlm, slurmdbd, munge,
mariadb-server): munged, MariaDB, slurmdbd (so that sacct answers), slurmctld and slurmd,
run as root with every file (configuration, key, state, database, logs) in one folder, on
ports of their own. ``one_node_cluster`` starts them, waits until the node is idle, and
stops them all when the block ends, also on failure."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacct", "sbatch")
# The job step plugin drops SLURM_CONF before its srun, so the configuration must be where
# srun looks by default; a file there that these tests did not write is left alone.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# editforge test cluster\n"
ACCOUNT = "editforge"
PARTITION = "cpu"
MAX_TIME_MIN = 30


class ClusterUnavailable(RuntimeError):
    """SLURM cannot start here; the message says why."""


def _free_ports(count: int) -> list[int]:
    """Free ports below the ephemeral range, where no outgoing connection takes them meanwhile."""
    ports: list[int] = []
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                ports.append(port)
        if len(ports) == count:
            return ports
    raise ClusterUnavailable("no free ports in 20000-32000")


def _wait(check, what: str, timeout_s: float, log: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``check()`` holds; else ClusterUnavailable with the end of the daemon's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        if check():
            return
        time.sleep(0.2)
    ended = "exited" if process is not None and process.poll() is not None else f"is not up after {timeout_s:.0f} s"
    tail = log.read_text()[-1500:] if log.exists() else ""
    raise ClusterUnavailable(f"{what} {ended}: {tail}")


@dataclass
class Cluster:
    root: Path
    node: str
    cpus: int
    mem_mb: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *command: str, check: bool = True) -> str:
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, name: str, *command: str, **env: str) -> None:
        log = open(self.root / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(
            command, env=self.env | env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).strip()

    def start_node(self) -> None:
        self.start("slurmd", "slurmd", "-D", "-N", self.node)
        up = ("idle", "mixed", "allocated", "completing")  # responding (a job may start on it at once)
        _wait(lambda: self.node_state() in up, "slurmd", 60, self.root / "slurmd.log", self.processes["slurmd"])

    def jobs(self, *args: str) -> list[dict[str, str]]:
        """sacct's table of every job of the cluster (allocations only, no steps)."""
        fields = ["JobID", "JobName", "Partition", "Account", "State", "ExitCode", "Elapsed", "ReqMem", "Timelimit",
                  "AllocCPUS", "Comment"]
        out = self.run("sacct", "-X", "-a", "-P", "-n", "--starttime", "2000-01-01", "-o", ",".join(fields), *args)
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    def table(self) -> str:
        """sacct's own rendering of the job table, for the test's output."""
        return self.run("sacct", "-X", "-a", "--starttime", "2000-01-01", "-o",
                        "JobID,Partition,State,Elapsed,ReqMem,Timelimit,AllocCPUS,Comment%60")


def _config(root: Path, node: str, cpus: int, mem_mb: int, ports: dict[str, int]) -> None:
    munge = root / "munge/munge.socket"
    (root / "slurm.conf").write_text(MARK + f"""ClusterName=editforge
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdTimeout=20
KillWait=5
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
# Without cgroups, memory is enforced by the accounting poll: a step above its job's memory is killed.
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={munge}
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime={MAX_TIME_MIN} State=UP
""")
    dbd = root / "slurmdbd.conf"
    dbd.write_text(f"""AuthType=auth/munge
AuthInfo=socket={munge}
DbdHost={node}
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser=root
LogFile={root}/slurmdbd.log
PidFile={root}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mysql"]}
StorageUser=root
StorageLoc=slurm_acct_db
""")
    dbd.chmod(0o600)


def _node_resources() -> tuple[str, int, int]:
    """This machine's short host name, CPUs and memory as slurmd sees them (2 GB left to the system)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    values = dict(re.findall(r"(\w+)=(\S+)", out))
    return values["NodeName"], int(values["CPUs"]), int(values["RealMemory"]) - 2048


@contextlib.contextmanager
def one_node_cluster(root: Path) -> Iterator[Cluster]:
    """A started one-node cluster with one partition and one account; ClusterUnavailable says why not."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster's daemons run as root, and this is not root")
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        raise ClusterUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm slurmdbd munge "
                                 "mariadb-server)")
    node, cpus, mem_mb = _node_resources()
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd", "mysql"), _free_ports(4)))
    for sub in ("munge", "state", "spool", "db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARK):
        raise ClusterUnavailable(f"{SYSTEM_CONF} is this machine's own SLURM configuration; the test cluster needs "
                                 "that path (srun inside a job reads it) and leaves it alone")
    _config(root, node, cpus, mem_mb, ports)
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "slurm.conf", SYSTEM_CONF)
    env = dict(os.environ, SLURM_CONF=str(SYSTEM_CONF))
    cluster = Cluster(root, node, cpus, mem_mb, env)
    try:
        key = root / "munge/munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        cluster.start("munged", "munged", "--foreground", "--force", f"--key-file={key}",
                      f"--socket={root}/munge/munge.socket", f"--pid-file={root}/munge/munged.pid",
                      f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/seed")
        socket_file = root / "munge/munge.socket"
        _wait(socket_file.exists, "munged", 20, root / "munged.out", cluster.processes["munged"])
        data = root / "db/data"
        cluster.run("mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db")
        cluster.start("mariadbd", "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                      f"--socket={root}/db/mysql.sock", "--bind-address=127.0.0.1", f"--port={ports['mysql']}",
                      "--innodb-buffer-pool-size=64M", f"--log-error={root}/db/error.log")
        _wait(lambda: socket.socket().connect_ex(("127.0.0.1", ports["mysql"])) == 0, "MariaDB", 60,
              root / "db/error.log", cluster.processes["mariadbd"])
        # slurmdbd reads the slurmdbd.conf beside $SLURM_CONF, which stays in the folder (mode 600).
        cluster.start("slurmdbd", "slurmdbd", "-D", SLURM_CONF=str(root / "slurm.conf"))
        listed = ["sacctmgr", "-n", "list", "cluster"]
        _wait(lambda: subprocess.run(listed, env=env, capture_output=True, timeout=30).returncode == 0,
              "slurmdbd", 60, root / "slurmdbd.out", cluster.processes["slurmdbd"])
        for entity in (("cluster", "editforge"), ("account", ACCOUNT), ("user", "root", f"account={ACCOUNT}")):
            cluster.run("sacctmgr", "-i", "add", *entity)
        cluster.start("slurmctld", "slurmctld", "-D", "-i")
        _wait(lambda: cluster.node_state() != "", "slurmctld", 60, root / "slurmctld.log",
              cluster.processes["slurmctld"])
        cluster.start_node()
        yield cluster
    finally:
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            cluster.stop(name)
        SYSTEM_CONF.unlink(missing_ok=True)
