"""The `slurm` backend: each placement is one Slurm batch job, driven through the Slurm CLI only.

Mapping (what gpufleet calls a cluster / NVLink domain, and what Slurm calls it):

* One `SlurmBackend` serves one Slurm cluster (one slurmctld), named by `conf` (a SLURM_CONF path put in
  the environment of every CLI call), so one gpufleet server can drive several Slurm clusters side by
  side. `cluster` names the gpufleet cluster this Slurm serves (the one `Loss`es are reported for).
* NVLink domain K is the set of nodes with the feature `domainK` (an HGX node alone, or the nodes of an
  NVL72 rack); a node without such a feature is a domain of its own, K = i-1 for a node named <prefix><i>
  (the digits at the end of its name), else its position in sinfo's list. Such name-derived indices
  can collide (a1 and b1 are both 0; a featureless node may land on a `domainK` feature's index): a
  colliding index is ambiguous, never merged into one domain; a gang placed on it is not pinned (Slurm
  picks the nodes) and a warning is logged. Give such nodes `domainK` features to pin them.
* A gang runs where gpufleet placed it. Its parts are first cleaned: parts with 0 GPUs are dropped and
  parts on the same domain are summed. Then: `--nodelist` when it takes whole domains, else a node count
  per domain feature (`--constraint=[domain0*2&domain3*2]`; `--constraint` only ever names a `domainK`
  feature, a domain known only by a node's name is only named through `--nodelist`), with
  `--gres=gpu:<per node>` and one task per tensor-parallel group that fits in a node
  (`--ntasks-per-node`); a multi-node gang runs its command under `srun`. `segments=True` adds
  `--segment=<nodes per domain>` (Slurm 23.11+ with topology/block).
* Different GPUs per node in different domains (an HGX gang of 8 + 4): when every part takes whole
  domains, the job is `--nodelist=<their nodes> --gpus=<total>`. Slurm 22.05 hands a job-wide `--gpus`
  out filling nodes in its node order (for `--nodes=2 --nodelist=n1,n2 --gpus=12`: 8 on n1, 4 on n2,
  whatever order the nodelist is written in), so this form is used only when the GPUs per node do not
  grow along the nodes' order (the natural order of their names, as in `NodeName=n[1-N]`); each node
  then runs one task per TP group when that is the same number on every node, else one task.
* When one job cannot say the allocation (mixed GPUs per node that are not whole domains or would be
  filled differently, a domain's share not splitting evenly over whole nodes, an ambiguous domain), or
  with `pin=False`, Slurm picks the nodes and `--switches=1` keeps a multi-node gang under one leaf
  switch; every such fallback of a pinned backend is logged (logger `gpufleet.backends`).
* A launch without GPUs asks for one node and no `--gres` (never `--gres=gpu:0`), and is not pinned.
* The domains are read from `sinfo --json` once and then kept current by every `losses()` call (which
  reads sinfo anyway). A launch the cache cannot place (a domain missing or with fewer nodes than its
  share), or that sbatch refuses naming an invalid node name / feature / node configuration, is tried
  once more after reading the domains afresh.
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

import itertools
import json
import logging
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
# what sbatch says when the nodes or features it was given no longer describe the cluster
STALE_PLACEMENT = re.compile(r"Invalid node name|Invalid feature specification|"
                             r"Requested node configuration is not available", re.IGNORECASE)

log = logging.getLogger("gpufleet.backends")


def _layout(launch: Launch, gpus_per_node: int) -> tuple[int, int]:
    """(nodes, GPUs per node) of a launch when Slurm picks the nodes; a launch without GPUs is one node
    with none (no `--gres` at all)."""
    gpus = max(0, launch.gpus)
    if gpus == 0:
        return 1, 0
    nodes = max(1, math.ceil(gpus / max(1, gpus_per_node)))
    return nodes, math.ceil(gpus / nodes)


def _tasks(per_node: int, group: int) -> int:
    """One task per tensor-parallel group when whole groups fit in a node, else one task per node."""
    group = max(1, group)
    return max(1, per_node // group) if group <= per_node and per_node % group == 0 else 1


def _merged_parts(launch: Launch) -> dict[int, int]:
    """The allocation's GPUs per domain: parts without GPUs left out, parts on the same domain summed
    (in the order the domains first appear)."""
    out: dict[int, int] = {}
    for d, g in launch.parts:
        if g > 0:
            out[d] = out.get(d, 0) + g
    return out


def _unpinned(launch: Launch, why: str) -> None:
    log.warning("slurm: job %s attempt %s is not pinned to NVLink domains %s: %s; Slurm picks the nodes",
                launch.job_id, launch.attempt, ",".join(f"{d}:{g}" for d, g in launch.parts), why)


def _pinned(launch: Launch, gpus_per_node: int, domains: dict[int, list[str]],
            segments: bool = False, named: set[int] | frozenset[int] = frozenset(),
            ambiguous: set[int] | frozenset[int] = frozenset()) -> tuple[list[int], list[str]] | None:
    """(GPUs of each node, sbatch options) that keep the gang on exactly the NVLink domains gpufleet
    allocated: `--nodelist` when it takes whole domains, else a feature count per domain
    (`--constraint=[domain0*2&domain3*2]`, which Slurm 22.05+ understands). `named` are the domains
    defined by a node's name or position rather than a `domainK` feature (only `--nodelist` can name
    them); `ambiguous` are indices several featureless nodes (or a featureless node and a feature) map to.
    None when one Slurm job cannot say it (logged); Slurm then picks the nodes."""
    gpn = max(1, gpus_per_node)
    merged = _merged_parts(launch)
    if not merged:
        return None  # no GPUs: nothing to pin
    wanted: list[tuple[int, int, int]] = []  # (domain, nodes taken in it, GPUs on it)
    for d, g in merged.items():
        members = domains.get(d)
        if not members:
            raise BackendError(f"job {launch.job_id}: this Slurm cluster has no node in NVLink domain {d} "
                               f"(the portfolio's cluster {launch.cluster} is larger than the Slurm cluster)")
        k = math.ceil(g / gpn)
        if k > len(members):
            raise BackendError(f"job {launch.job_id}: NVLink domain {d} has {len(members)} node(s) of {gpn} "
                               f"GPUs here, not the {g} GPUs allocated on it")
        wanted.append((d, k, g))
    unclear = sorted(d for d, _, _ in wanted if d in ambiguous)
    if unclear:
        _unpinned(launch, f"NVLink domain index(es) {unclear} match several nodes without a domainK "
                          "feature (give the nodes domainK features)")
        return None
    if any(g % k for _, k, g in wanted):
        _unpinned(launch, "a domain's GPUs do not split evenly over its nodes")
        return None
    whole = all(k == len(domains[d]) for d, k, _ in wanted)
    pers = {g // k for _, k, g in wanted}
    if len(pers) == 1:
        (per,) = pers
        nodes = sum(k for _, k, _ in wanted)
        if whole:
            opts = ["--nodelist=" + ",".join(n for d, _, _ in wanted for n in domains[d])]
        elif any(d in named for d, _, _ in wanted):
            _unpinned(launch, "part of the allocation is a share of a domain and part a domain known "
                              "only by node name")
            return None
        elif len(wanted) == 1:
            opts = [f"--constraint=domain{wanted[0][0]}"]
        else:
            opts = ["--constraint=[" + "&".join(f"domain{d}*{k}" for d, k, _ in wanted) + "]"]
        ks = {k for _, k, _ in wanted}
        if segments and len(ks) == 1 and max(ks) > 1:
            opts.append(f"--segment={max(ks)}")  # Slurm 23.11+ with topology/block: one segment per domain
        return [per] * nodes, opts
    # different GPUs per node in different domains: one job says it only as whole nodes by name with a
    # job-wide GPU count, which Slurm 22.05 hands out filling the nodes in its node order
    if not whole:
        _unpinned(launch, "different GPUs per node in different domains, and not whole domains")
        return None
    layout = sorted(((n, g // k) for d, k, g in wanted for n in domains[d]), key=lambda x: _natural(x[0]))
    counts = [c for _, c in layout]
    if any(a < b for a, b in itertools.pairwise(counts)):
        _unpinned(launch, "different GPUs per node, and a node later in Slurm's order takes more "
                          "(Slurm fills --gpus in node order)")
        return None
    return counts, ["--nodelist=" + ",".join(n for n, _ in layout)]


def job_name(launch: Launch) -> str:
    return f"gpufleet-{launch.job_id}-{launch.attempt}"


def sbatch_args(launch: Launch, gpus_per_node: int, partition: str | None = None,
                output: str | None = None, domains: dict[int, list[str]] | None = None,
                segments: bool = False, named: set[int] | frozenset[int] = frozenset(),
                ambiguous: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """sbatch's options for a launch (without the script path). With `domains` (domain index -> its node
    names; `named` / `ambiguous` as for `_pinned`) the job is pinned to the allocation's domains;
    without, Slurm picks nodes under one switch."""
    pin = _pinned(launch, gpus_per_node, domains, segments, named, ambiguous) if domains is not None else None
    if pin is not None:
        counts, where = pin
        nodes = len(counts)
    else:
        nodes, per = _layout(launch, gpus_per_node)
        counts = [per] * nodes
        where = ["--switches=1"] if nodes > 1 else []
    if len(set(counts)) == 1:
        gres = [f"--gres=gpu:{counts[0]}"] if counts[0] > 0 else []
        tasks = _tasks(counts[0], launch.group)
    else:  # whole nodes by name, the GPUs job-wide (Slurm fills them in node order)
        gres = [f"--gpus={sum(counts)}"]
        per_task = {_tasks(c, launch.group) for c in counts}
        tasks = per_task.pop() if len(per_task) == 1 else 1
    args = ["--parsable", "--no-requeue", f"--job-name={job_name(launch)}", f"--nodes={nodes}",
            *gres, f"--ntasks-per-node={tasks}", *where]
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


def parse_kv(line: str) -> dict[str, str]:
    """`scontrol show ... -o` output: Key=Value pairs separated by spaces, where a value may hold spaces."""
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


def _domain_key(node: dict[str, Any], position: int) -> tuple[int, bool]:
    """(NVLink domain index, whether a `domainK` feature defines it) of one of sinfo's nodes."""
    feats = f"{node.get('active_features') or ''},{node.get('features') or ''}"
    m = re.search(r"(?:^|,)domain(\d+)(?:,|$)", feats)
    if m:
        return int(m.group(1)), True
    m = re.search(r"(\d+)$", str(node.get("name", "")))
    if m:
        return max(0, int(m.group(1)) - 1), False
    return position, False


def _domain_of(node: dict[str, Any], position: int) -> int:
    return _domain_key(node, position)[0]


def _domains_of(nodes: list[dict[str, Any]], partition: str | None = None
                ) -> tuple[dict[int, list[str]], set[int], set[int]]:
    """(domain index -> node names, domains known only by node name/position, ambiguous indices) of
    sinfo's nodes. An index is ambiguous when two featureless nodes map to it, or a featureless node
    maps to the index of a `domainK` feature."""
    featured: dict[int, set[str]] = {}
    by_name: dict[int, set[str]] = {}
    for i, n in enumerate(nodes):
        if partition and partition not in (n.get("partitions") or []):
            continue
        d, feature = _domain_key(n, i)
        (featured if feature else by_name).setdefault(d, set()).add(str(n.get("name", i)))
    ambiguous = {d for d, names in by_name.items() if d in featured or len(names) > 1}
    members: dict[int, set[str]] = {d: set(v) for d, v in featured.items()}
    for d, names in by_name.items():
        members.setdefault(d, set()).update(names)
    domains = {d: sorted(v, key=_natural) for d, v in sorted(members.items())}
    return domains, set(by_name) - set(featured), ambiguous


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
        self._named: set[int] = set()
        self._ambiguous: set[int] = set()

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
        """NVLink domain index -> the names of its nodes (in the partition), from sinfo; cached (and
        brought up to date by every `losses()`)."""
        if self._domains is None or refresh:
            self._set_domains(self._json("sinfo", "--json").get("nodes", []))
        assert self._domains is not None
        return self._domains

    def _set_domains(self, nodes: list[dict[str, Any]]) -> None:
        domains, named, ambiguous = _domains_of(nodes, self.partition)
        if ambiguous and ambiguous != self._ambiguous:
            log.warning("slurm (%s): NVLink domain index(es) %s match several nodes without a domainK feature "
                        "(%s); jobs placed there are not pinned", self._where(), sorted(ambiguous),
                        "; ".join(f"{d}: {','.join(domains[d])}" for d in sorted(ambiguous)))
        self._domains, self._named, self._ambiguous = domains, named, ambiguous

    def _sbatch_args(self, launch: Launch, output: str, refresh: bool = False) -> tuple[list[str], bool]:
        """sbatch's options and whether the domains were read afresh for them. A launch the cached
        domains cannot place (a domain missing, or with fewer nodes than its share) is tried once more
        against sinfo's current answer."""
        gpn = self.gpus_per_node()
        if not self.pin:
            return sbatch_args(launch, gpn, self.partition, output, None, self.segments), False
        domains = self.domains(refresh=refresh)
        if not refresh and any(d not in domains for d in _merged_parts(launch)):
            domains, refresh = self.domains(refresh=True), True  # nodes may have been added since
        try:
            return sbatch_args(launch, gpn, self.partition, output, domains, self.segments, self._named,
                               self._ambiguous), refresh
        except BackendError:
            if refresh:
                raise
            domains = self.domains(refresh=True)  # a domain may have gained nodes since
            return sbatch_args(launch, gpn, self.partition, output, domains, self.segments, self._named,
                               self._ambiguous), True

    # -- the interface --------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        if not launch.command.strip():
            raise BackendError(f"job {launch.job_id} has no command to run")
        work = (self.root / "runs" / launch.run_name).resolve()
        work.mkdir(parents=True, exist_ok=True)
        Path(launch.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        output = work / "output.log"
        args, fresh = self._sbatch_args(launch, str(output))
        r = self._submit(launch, work, args)
        if r.returncode != 0 and self.pin and not fresh and STALE_PLACEMENT.search(r.stderr):
            # the cached domains name nodes or features the cluster no longer has: read them again, once
            args, _ = self._sbatch_args(launch, str(output), refresh=True)
            r = self._submit(launch, work, args)
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

    def _submit(self, launch: Launch, work: Path, args: list[str]) -> subprocess.CompletedProcess:
        nodes = int(next(a for a in args if a.startswith("--nodes=")).split("=", 1)[1])
        script = work / "job.sh"
        script.write_text(batch_script(launch, nodes))
        script.chmod(0o755)
        return self._run("sbatch", *args, str(script), cwd=work)

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
        info = parse_kv(r.stdout.splitlines()[0])
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
        self._set_domains(nodes)  # the same answer keeps the domains current for the next start
        return out

    def close(self) -> None:
        pass
