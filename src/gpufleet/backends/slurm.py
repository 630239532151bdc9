"""The `slurm` backend: each placement is one Slurm batch job, driven through the Slurm CLI only.

Mapping (what gpufleet calls a cluster / NVLink domain, and what Slurm calls it):

* One `SlurmBackend` serves one Slurm cluster (one slurmctld), named by `conf` (a SLURM_CONF path put in
  the environment of every CLI call), so one gpufleet server can drive several Slurm clusters side by
  side. `cluster` names the gpufleet cluster this Slurm serves (the one `Loss`es are reported for).
* NVLink domain K is the set of nodes with the feature `domainK` (an HGX node alone, or the nodes of an
  NVL72 rack); a node without such a feature is a domain of its own, K = i-1 for a node named n<i> (the
  digits at the end of its name), else its position in sinfo's list.
* A gang runs where gpufleet placed it: `--nodelist` when it takes whole domains, else a node count per
  domain feature (`--constraint=[domain0*2&domain3*2]`), with `--gres=gpu:<per node>` and one task per
  tensor-parallel group that fits in a node (`--ntasks-per-node`); a multi-node gang runs its command
  under `srun`. `segments=True` adds `--segment=<nodes per domain>` (Slurm 23.11+ with topology/block).
  When one job cannot say the allocation (different GPUs per node in different domains), or with
  `pin=False`, Slurm picks the nodes and `--switches=1` keeps a multi-node gang under one leaf switch.
* Job states: PENDING/CONFIGURING/RUNNING/COMPLETING/SUSPENDED are running (left out of `poll`'s
  answer), COMPLETED succeeded, FAILED/OUT_OF_MEMORY/TIMEOUT failed (with the exit code), CANCELLED
  failed ("cancelled"), NODE_FAIL/BOOT_FAIL/PREEMPTED/DEADLINE lost; a job Slurm no longer knows
  (finished jobs stay visible MinJobAge seconds) is lost.
* A controller that cannot be reached (or a CLI call that times out) raises `BackendUnavailable`; a
  missing Slurm binary or a refused submission raises `BackendError`.

Notes on Slurm 22.05: `squeue --json` ignores -j/-t and returns every job (filtered here), gives
`exit_code` as a raw wait status (exit 3 -> 768), and exits 0 with `errors` set and no jobs when the
controller is down.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .base import BackendError, BackendUnavailable, Launch, Loss, Status

CONTROLLER_DOWN = "Unable to contact slurm controller"
RUNNING_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                  "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
FAILED_STATES = {"FAILED", "OUT_OF_MEMORY", "TIMEOUT"}
LOST_STATES = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
BAD_NODE_STATES = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING"}
INSTALL_HINT = "install the Slurm client tools (Debian/Ubuntu: apt-get install slurm-client)"


def _layout(launch: Launch, gpus_per_node: int) -> tuple[int, int]:
    """(nodes, GPUs per node) of a launch when Slurm picks the nodes."""
    gpus = max(1, launch.gpus)
    nodes = max(1, math.ceil(gpus / max(1, gpus_per_node)))
    return nodes, math.ceil(gpus / nodes)


def _tasks(per_node: int, group: int) -> int:
    """One task per tensor-parallel group when whole groups fit in a node, else one task per node."""
    group = max(1, group)
    return max(1, per_node // group) if group <= per_node and per_node % group == 0 else 1


def _pinned(launch: Launch, gpus_per_node: int, domains: dict[int, list[str]],
            segments: bool = False) -> tuple[int, int, list[str]] | None:
    """(nodes, GPUs per node, sbatch options) that keep the gang on exactly the NVLink domains gpufleet
    allocated: `--nodelist` when it takes whole domains, else a feature count per domain
    (`--constraint=[domain0*2&domain3*2]`, which Slurm 22.05+ understands). None when one Slurm job cannot
    say it (the parts need different GPUs per node); Slurm then picks the nodes."""
    gpn = max(1, gpus_per_node)
    wanted: list[tuple[int, int]] = []  # (domain, nodes taken in it)
    per_node: set[int] = set()
    for d, g in launch.parts:
        members = domains.get(d)
        if not members:
            raise BackendError(f"job {launch.job_id}: this Slurm cluster has no node in NVLink domain {d} "
                               f"(the portfolio's cluster {launch.cluster} is larger than the Slurm cluster)")
        k = max(1, math.ceil(g / gpn))
        if k > len(members):
            raise BackendError(f"job {launch.job_id}: NVLink domain {d} has {len(members)} node(s) of {gpn} "
                               f"GPUs here, not the {g} GPUs allocated on it")
        if g % k:
            return None
        per_node.add(g // k)
        wanted.append((d, k))
    if len(per_node) != 1:
        return None
    (per,) = per_node
    nodes = sum(k for _, k in wanted)
    if all(k == len(domains[d]) for d, k in wanted):
        opts = ["--nodelist=" + ",".join(n for d, _ in wanted for n in domains[d])]
    elif len(wanted) == 1:
        opts = [f"--constraint=domain{wanted[0][0]}"]
    else:
        opts = ["--constraint=[" + "&".join(f"domain{d}*{k}" for d, k in wanted) + "]"]
    ks = {k for _, k in wanted}
    if segments and len(ks) == 1 and max(ks) > 1:
        opts.append(f"--segment={max(ks)}")  # Slurm 23.11+ with topology/block: one segment per domain
    return nodes, per, opts


def job_name(launch: Launch) -> str:
    return f"gpufleet-{launch.job_id}-{launch.attempt}"


def sbatch_args(launch: Launch, gpus_per_node: int, partition: str | None = None,
                output: str | None = None, domains: dict[int, list[str]] | None = None,
                segments: bool = False) -> list[str]:
    """sbatch's options for a launch (without the script path). With `domains` (domain index -> its node
    names) the job is pinned to the allocation's domains; without, Slurm picks nodes under one switch."""
    pin = _pinned(launch, gpus_per_node, domains, segments) if domains is not None else None
    if pin is not None:
        nodes, per_node, where = pin
    else:
        nodes, per_node = _layout(launch, gpus_per_node)
        where = ["--switches=1"] if nodes > 1 else []
    args = ["--parsable", "--no-requeue", f"--job-name={job_name(launch)}", f"--nodes={nodes}",
            f"--gres=gpu:{per_node}", f"--ntasks-per-node={_tasks(per_node, launch.group)}", *where]
    if partition:
        args.append(f"--partition={partition}")
    if output:
        args.append(f"--output={output}")
    return args


def job_env(launch: Launch) -> dict[str, str]:
    """The variables a job sees besides what Slurm sets (CUDA_VISIBLE_DEVICES comes from --gres)."""
    return {**launch.env, **launch.variables()}


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def batch_script(launch: Launch, nodes: int = 1) -> str:
    """The batch script: export the GPUFLEET_* variables, then run the command (under srun when the gang
    spans more than one node, so it runs on each node, once per task)."""
    lines = ["#!/bin/bash", f"# gpufleet job {launch.job_id} attempt {launch.attempt} ({launch.request_id})"]
    for k, v in job_env(launch).items():
        if not _ENV_NAME.match(k):
            raise BackendError(f"job {launch.job_id}: bad environment variable name {k!r}")
        lines.append(f"export {k}={shlex.quote(v)}")
    lines.append(f"mkdir -p {shlex.quote(launch.checkpoint_dir)}")
    if nodes > 1:
        lines.append(f"exec srun --kill-on-bad-exit=1 /bin/bash -c {shlex.quote(launch.command)}")
    else:
        lines.append(launch.command)
    return "\n".join(lines) + "\n"


def _exit_code(raw: Any) -> int | None:
    """squeue --json's exit_code is a raw wait status (exit 3 -> 768)."""
    if isinstance(raw, dict):  # later Slurm versions: {"status": ..., "return_code": N, ...}
        rc = raw.get("return_code")
        return int(rc) if isinstance(rc, int) else None
    if isinstance(raw, int):
        sig = raw & 0x7F
        return 128 + sig if sig else (raw >> 8) & 0xFF  # killed by a signal: 128 + its number, as a shell says
    return None


def _status(state: str, code: int | None, reason: str = "") -> Status | None:
    """A Slurm job state as a Status; None while it runs."""
    state = state.split()[0].upper() if state else ""
    if state in RUNNING_STATES:
        return None
    if state == "COMPLETED":
        return Status("succeeded", 0)
    if state in FAILED_STATES:
        return Status("failed", code if code else 1, f"{state.lower()}" + (f": {reason}" if reason else ""))
    if state == "CANCELLED":
        return Status("failed", None, "cancelled")
    if state in LOST_STATES:
        return Status("lost", None, f"slurm job {state}" + (f" ({reason})" if reason else ""))
    return Status("lost", None, f"slurm job in unknown state {state!r}")


def _parse_kv(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    key = None
    for tok in line.strip().split(" "):
        k, eq, v = tok.partition("=")
        if eq and k and k[0].isupper():
            key = k
            out[k] = v
        elif key is not None:
            out[key] += " " + tok
    return out


def _domain_of(node: dict[str, Any], position: int) -> int:
    feats = f"{node.get('active_features') or ''},{node.get('features') or ''}"
    m = re.search(r"(?:^|,)domain(\d+)(?:,|$)", feats)
    if m:
        return int(m.group(1))
    m = re.search(r"(\d+)$", str(node.get("name", "")))
    if m:
        return max(0, int(m.group(1)) - 1)
    return position


def _errors_text(errors: Any) -> str:
    """squeue/sinfo --json's `errors` list as one line: each error's description (or its text)."""
    items = errors if isinstance(errors, list) else [errors]
    parts = []
    for e in items:
        text = (e.get("description") or e.get("error") or str(e)) if isinstance(e, dict) else str(e)
        parts.append(" ".join(str(text).split()))
    return "; ".join(dict.fromkeys(parts))[:300]


def _natural(name: str) -> tuple:
    """n2 before n10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _gres_gpus(gres: str) -> int:
    """GPUs in a gres string such as 'gpu:8', 'gpu:h100:8(S:0-1)', 'gpu:a100:4,shard:8'."""
    total = 0
    for part in (gres or "").split(","):
        part = part.split("(")[0].strip()
        bits = part.split(":")
        if bits and bits[0] == "gpu" and len(bits) >= 2 and bits[-1].isdigit():
            total += int(bits[-1])
    return total


class SlurmBackend:
    name = "slurm"

    def __init__(self, name: str = "slurm", conf: str | None = None, partition: str | None = None,
                 cluster: str | None = None, cluster_map: dict[str, str] | None = None,
                 root: str | Path | None = None, gpus_per_node: int | None = None,
                 poll_timeout_s: float = 30.0, pin: bool = True, segments: bool = False):
        self.name = name
        self.conf = str(conf) if conf else None
        self.partition = partition
        self.cluster = cluster
        self.cluster_map = dict(cluster_map or {})
        self.root = Path(root) if root else Path(tempfile.gettempdir()) / "gpufleet-slurm"
        self._gpus_per_node = gpus_per_node
        self.timeout = poll_timeout_s
        self.pin = pin
        self.segments = segments
        self._bad_nodes: set[str] = set()
        self._domains: dict[int, list[str]] | None = None

    # -- the CLI --------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_"))}
        env.pop("GPUFLEET_TOKEN", None)
        env.pop("GPUFLEET_ADMIN_TOKEN", None)
        if self.conf:
            env["SLURM_CONF"] = self.conf
        elif "SLURM_CONF" in os.environ:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        return env

    def _run(self, *cmd: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        try:
            r = subprocess.run(list(cmd), capture_output=True, text=True, env=self._env(), check=False,
                               timeout=self.timeout, cwd=cwd, stdin=subprocess.DEVNULL)
        except FileNotFoundError as e:
            raise BackendError(f"{cmd[0]} not found: {INSTALL_HINT}") from e
        except subprocess.TimeoutExpired as e:
            raise BackendUnavailable(f"slurm ({self._where()}): {cmd[0]} timed out after {self.timeout}s") \
                from e
        if CONTROLLER_DOWN in r.stderr:
            raise BackendUnavailable(f"slurm ({self._where()}): {r.stderr.strip()}")
        return r

    def _where(self) -> str:
        return self.conf or "default SLURM_CONF"

    def _json(self, *cmd: str) -> dict[str, Any]:
        r = self._run(*cmd)
        if r.returncode != 0:
            raise BackendError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        try:
            data = json.loads(r.stdout)
        except ValueError as e:
            raise BackendError(f"{' '.join(cmd)}: unreadable output: {r.stdout[:200]!r}") from e
        if data.get("errors"):
            raise BackendUnavailable(f"slurm ({self._where()}): {cmd[0]}: {_errors_text(data['errors'])}")
        return data

    def gpus_per_node(self) -> int:
        """GPUs of one node (from the constructor, or sinfo's gres once, cached)."""
        if self._gpus_per_node is None:
            nodes = self._json("sinfo", "--json").get("nodes", [])
            if self.partition:
                nodes = [n for n in nodes if self.partition in (n.get("partitions") or [])]
            counts = [_gres_gpus(str(n.get("gres", ""))) for n in nodes]
            best = max(counts, default=0)
            if best <= 0:
                raise BackendError(f"slurm ({self._where()}): no node has GPUs in its gres")
            self._gpus_per_node = best
        return self._gpus_per_node

    def domains(self, refresh: bool = False) -> dict[int, list[str]]:
        """NVLink domain index -> the names of its nodes (in the partition), from sinfo; cached."""
        if self._domains is None or refresh:
            nodes = self._json("sinfo", "--json").get("nodes", [])
            out: dict[int, list[str]] = {}
            for i, n in enumerate(nodes):
                if self.partition and self.partition not in (n.get("partitions") or []):
                    continue
                out.setdefault(_domain_of(n, i), []).append(str(n.get("name", i)))
            self._domains = {d: sorted(set(v), key=_natural) for d, v in sorted(out.items())}
        return self._domains

    def _sbatch_args(self, launch: Launch, output: str) -> list[str]:
        gpn = self.gpus_per_node()
        domains = None
        if self.pin:
            domains = self.domains()
            if any(d not in domains for d, _ in launch.parts):
                domains = self.domains(refresh=True)  # nodes may have been added since
        return sbatch_args(launch, gpn, self.partition, output, domains, self.segments)

    # -- the interface --------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        if not launch.command.strip():
            raise BackendError(f"job {launch.job_id} has no command to run")
        hid = f"{launch.job_id}.{launch.attempt}.{launch.request_id}".replace("/", "_")
        work = (self.root / "runs" / hid).resolve()
        work.mkdir(parents=True, exist_ok=True)
        Path(launch.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        output = work / "output.log"
        args = self._sbatch_args(launch, str(output))
        nodes = int(next(a for a in args if a.startswith("--nodes=")).split("=", 1)[1])
        script = work / "job.sh"
        script.write_text(batch_script(launch, nodes))
        script.chmod(0o755)
        r = self._run("sbatch", *args, str(script), cwd=work)
        if r.returncode != 0:
            raise BackendError(f"sbatch refused job {launch.job_id}: {r.stderr.strip()}")
        out = r.stdout.strip().splitlines()
        try:
            jid = int(out[-1].split(";")[0])
        except (IndexError, ValueError) as e:
            raise BackendError(f"sbatch gave no job id for job {launch.job_id}: {r.stdout!r}") from e
        return {"id": jid, "cluster": launch.cluster, "conf": self.conf, "dir": str(work),
                "name": job_name(launch), "output": str(output),
                "where": [a for a in args if a.startswith(("--nodelist=", "--constraint=", "--switches="))]}

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        if not handles:
            return {}
        jobs = {int(j["job_id"]): j for j in self._json("squeue", "--json").get("jobs", [])
                if "job_id" in j}
        out: dict[int, Status] = {}
        for key, h in handles.items():
            jid = int(h["id"])
            j = jobs.get(jid)
            if j is not None:
                st = _status(str(j.get("job_state", "")), _exit_code(j.get("exit_code")),
                             str(j.get("state_reason") or ""))
            else:
                st = self._scontrol_status(jid)
            if st is not None:
                out[key] = st
        return out

    def _scontrol_status(self, jid: int) -> Status | None:
        r = self._run("scontrol", "show", "job", "-o", str(jid))
        if r.returncode != 0 or not r.stdout.strip():  # "Invalid job id specified": long gone
            return Status("lost", None, f"slurm no longer knows job {jid}")
        info = _parse_kv(r.stdout.splitlines()[0])
        code = None
        ec = info.get("ExitCode", "")
        if ec.split(":")[0].isdigit():
            code = int(ec.split(":")[0])
        return _status(info.get("JobState", ""), code, info.get("Reason", ""))

    def cancel(self, handle: dict[str, Any]) -> None:
        r = self._run("scancel", str(int(handle["id"])))
        if r.returncode != 0 and "Invalid job id" not in r.stderr:
            raise BackendError(f"scancel {handle['id']} failed: {r.stderr.strip()}")

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        path = Path(handle.get("output") or Path(handle["dir"]) / "output.log")
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:])
        return text

    def _cluster_of(self, node: dict[str, Any]) -> str:
        for p in node.get("partitions") or []:
            if p in self.cluster_map:
                return self.cluster_map[p]
        return self.cluster or next(iter(self.cluster_map.values()), self.name)

    def losses(self) -> list[Loss]:
        nodes = self._json("sinfo", "--json").get("nodes", [])
        out: list[Loss] = []
        bad_now: set[str] = set()
        for i, n in enumerate(nodes):
            name = str(n.get("name", i))
            words = {w.upper() for w in re.split(r"[+\s]", str(n.get("state", ""))) if w}
            words |= {str(f).upper() for f in n.get("state_flags") or []}
            if not words & BAD_NODE_STATES:
                continue
            bad_now.add(name)
            if name in self._bad_nodes:
                continue
            state = "/".join(sorted(words & BAD_NODE_STATES)).lower()
            reason = f"slurm node {name} {state}" + (f": {n['reason']}" if n.get("reason") else "")
            out.append(Loss(self._cluster_of(n), _domain_of(n, i), reason))
        self._bad_nodes = bad_now
        return out

    def close(self) -> None:
        pass
