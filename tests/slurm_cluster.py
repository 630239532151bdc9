"""Real multi-node Slurm clusters for tests, started with gpufleet.devtools.slurm_dev (`gpufleet dev slurm`).

    from slurm_cluster import slurm_clusters  # noqa: F401  (the fixture factory)

    def test_x(slurm_clusters):
        a = slurm_clusters("prov-a", nodes=2)          # one slurmctld + 2 slurmd, 8 fake GPUs each
        job = a.sbatch("--gres=gpu:4", wrap="echo $CUDA_VISIBLE_DEVICES")
        assert a.wait_job(job)["JobState"] == "COMPLETED"
        a.run("scontrol", "show", "node", "n1")         # any client command, with SLURM_CONF set

Or without pytest: `start_cluster(tmpdir, "prov-a")` ... `.stop()`. Tests skip (they never install
anything) when the machine lacks Debian's slurmctld / slurmd / slurm-client packages; .ci/run installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gpufleet.backends.slurm import parse_kv
from gpufleet.devtools import slurm_dev

ROOT = Path(__file__).resolve().parents[1]
SLURM_DEV = ("-m", "gpufleet.devtools.slurm_dev")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}
# what a client command prints when the cluster's slurmctld is not running
CONTROLLER_DOWN = "Unable to contact slurm controller (connect failure)"
MAX_DIR = 60  # Slurm puts unix sockets under DIR/spool/<node>/; their paths are limited to 108 bytes


def missing_slurm() -> str | None:
    """Why no cluster can start here, or None when the binaries are present."""
    missing = slurm_dev.missing_binaries()
    if missing:
        return (f"Slurm not installed (missing {', '.join(missing)}; "
                "apt-get install slurmctld slurmd slurm-client)")
    return None



class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """A cluster started by `scripts/slurm-dev up DIR`. `.env` holds SLURM_CONF for client commands."""

    def __init__(self, dir: Path, info: dict):
        self.dir = Path(dir)
        self.info = info
        self.name: str = info["name"]
        self.conf = Path(info["conf"])
        self.nodes: list[str] = info["nodes"]
        self.controller_port: int = info["controller_port"]
        self.node_ports: dict[str, int] = info["node_ports"]
        self.gpus_per_node: int = info["gpus_per_node"]

    def __repr__(self) -> str:
        return f"SlurmCluster({self.name!r}, {self.dir}, nodes={self.nodes})"

    @property
    def env(self) -> dict[str, str]:
        """The full environment for a client command of this cluster (no SLURM_* from outside)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    # -- lifecycle ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process of this cluster (controller, slurmds, jobs). Safe to repeat."""
        _script("down", str(self.dir))

    def stop_controller(self) -> None:
        """Stop only slurmctld: running jobs go on; client commands fail with CONTROLLER_DOWN."""
        _script("down", str(self.dir), "--controller-only")

    def start(self) -> SlurmCluster:
        """(Re)start what is not running, with the same ports and saved state. Jobs whose slurmd was
        stopped end as NODE_FAIL; after stop_controller() running jobs are recovered and go on."""
        self.info = json.loads(_script("up", str(self.dir), "--json").stdout)
        return self

    def status(self) -> dict:
        r = subprocess.run([sys.executable, *SLURM_DEV, "status", str(self.dir), "--json"], check=False,
                           capture_output=True, text=True, timeout=60)
        return json.loads(r.stdout)

    def log(self, daemon: str = "slurmctld") -> str:
        """A daemon's log: "slurmctld" or "slurmd-n1"."""
        p = self.dir / "log" / f"{daemon}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    # -- client commands ----------------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = False, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run a Slurm client command (sinfo, sbatch, ...) against this cluster; text output. It runs in
        DIR, so a job's default slurm-<id>.out lands there."""
        kw.setdefault("cwd", self.dir)
        r = subprocess.run(list(cmd), check=False, capture_output=True, text=True, env=self.env,
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} -> {r.returncode}: {r.stderr.strip()}")
        return r

    def sbatch(self, *args: str, wrap: str | None = None) -> int:
        """Submit a batch job; returns its id. Output goes to DIR/out/<id>.txt unless -o is given."""
        (self.dir / "out").mkdir(exist_ok=True)
        given = any(a.startswith(("-o", "--output")) for a in args)
        extra = [] if given else ["-o", str(self.dir / "out" / "%j.txt")]
        cmd = ["sbatch", "--parsable", *extra, *args] + (["--wrap", wrap] if wrap is not None else [])
        out = self.run(*cmd, check=True).stdout.strip()
        return int(out.split(";")[0])

    def output(self, job_id: int) -> str:
        p = self.dir / "out" / f"{job_id}.txt"
        return p.read_text(errors="replace") if p.exists() else ""

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job -o ID` as a dict: JobState, ExitCode ("3:0"), Reason, NodeList, ..."""
        return parse_kv(self.run("scontrol", "show", "job", "-o", str(job_id), check=True).stdout)

    def node(self, name: str) -> dict[str, str]:
        """`scontrol show node -o NAME` as a dict: State ("IDLE", "DOWN", ...), Reason, Gres, ..."""
        return parse_kv(self.run("scontrol", "show", "node", "-o", name, check=True).stdout)

    def squeue_json(self) -> list[dict]:
        """All jobs the controller still knows (22.05's `squeue --json` ignores -j/-t: filter yourself)."""
        r = self.run("squeue", "--json", check=True)
        data = json.loads(r.stdout)
        if data.get("errors"):
            raise SlurmError(f"squeue --json: {data['errors']}")
        return data["jobs"]

    def node_states(self) -> dict[str, str]:
        """Node -> sinfo's compact state (idle, mix, alloc, down, drain, ...; '*' = not responding)."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N|%t", check=True).stdout
        return dict(line.split("|", 1) for line in out.split() if "|" in line)

    def wait_job(self, job_id: int, states: set[str] | frozenset[str] = frozenset(FINISHED),
                 timeout: float = 30) -> dict[str, str]:
        """Poll until the job's JobState is one of `states` (default: any finished state)."""
        end = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id} on {self.name} still {info.get('JobState')} "
                                   f"({info.get('Reason')}) after {timeout}s")
            time.sleep(0.1)


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *SLURM_DEV, *args], check=False, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise SlurmError(f"slurm-dev {' '.join(args)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r


def start_cluster(tmpdir: Path | str, name: str, nodes: int = 2, gpus: int = 8, *,
                  gpu_type: str | None = None, cpus: int | None = None, nodes_per_switch: int | None = None,
                  nodes_per_domain: int | None = None,
                  message_timeout: int | None = None) -> SlurmCluster:
    """Start cluster `name` in tmpdir/name (a fresh one; skips the test when Slurm is not installed).
    When that path is too long for Slurm's unix sockets, the cluster lives in a short /tmp directory
    and tmpdir/name links to it."""
    why = missing_slurm()
    if why:
        pytest.skip(why)
    d = Path(tmpdir) / name
    if len(str(d.resolve())) > MAX_DIR and not d.exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        d.symlink_to(tempfile.mkdtemp(prefix=f"slurm-{name[:20]}-", dir="/tmp"))
    args = ["up", str(d), "--json", "--clean", "--name", name, "--nodes", str(nodes),
            "--gpus-per-node", str(gpus)]
    for flag, val in (("--gpu-type", gpu_type), ("--cpus-per-node", cpus),
                      ("--nodes-per-switch", nodes_per_switch),
                      ("--nodes-per-domain", nodes_per_domain), ("--message-timeout", message_timeout)):
        if val is not None:
            args += [flag, str(val)]
    try:
        r = _script(*args)
    except BaseException:
        subprocess.run([sys.executable, *SLURM_DEV, "down", str(d)], check=False, capture_output=True,
                       timeout=60)
        raise
    return SlurmCluster(d.resolve(), json.loads(r.stdout))


@pytest.fixture
def slurm_clusters(tmp_path):
    """Factory: `slurm_clusters("prov-a", nodes=2, gpus=8, **kw)` starts a cluster; all are stopped (and
    their short /tmp directories removed) at teardown."""
    started: list[SlurmCluster] = []

    def make(name: str = "slurm", nodes: int = 2, gpus: int = 8, **kw) -> SlurmCluster:
        c = start_cluster(tmp_path, name, nodes, gpus, **kw)
        started.append(c)
        return c

    yield make
    errors = []
    for c in started:
        try:
            c.stop()
        except (SlurmError, OSError, subprocess.SubprocessError) as e:  # stop the others all the same
            errors.append(e)
        if (tmp_path / c.name).is_symlink():
            shutil.rmtree(c.dir, ignore_errors=True)
    if errors:
        raise errors[0]


@pytest.fixture
def slurm_cluster(slurm_clusters) -> SlurmCluster:
    """One 2-node cluster with 8 fake GPUs per node."""
    return slurm_clusters("slurm")
