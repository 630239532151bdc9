"""`gpufleet demo --live`: a real failover between two providers, each a local Slurm cluster (or, with
`--engine ray`, provider A a local Ray cluster and provider B local processes: demo_live_ray.py).

Two Slurm clusters (prov-a, prov-b: 2 nodes x 8 fake GPUs, one node per NVLink domain) are started with
gpufleet.devtools.slurm_dev, a `gpufleet serve` subprocess schedules onto them through two Slurm backends,
a 16-GPU TP=8 training gang that writes a checkpoint every step starts on the cheaper provider A, and A's
Slurm is stopped under it. The server notices, requeues the gang and it finishes on provider B from its
last checkpoint; a small batch job pinned to B runs alongside and is not affected. Everything started is
stopped again, also on Ctrl-C or error.

A work dir the demo uses holds a marker file (.gpufleet-demo): `--workdir` refuses a non-empty directory
without one, and the demo only ever removes what it wrote there itself.

Exit codes: 0 the failover worked, 1 it did not (or something failed on the way), 2 the --workdir is not the
demo's, 3 Slurm (with --engine ray: Ray) is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from ..devtools import procs, slurm_dev
from .common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, emit_json, err, escape, out

EXIT_NO_SLURM = 3
INSTALL_HINT = "apt-get install slurmctld slurmd slurm-client"
MAX_CLUSTER_DIR = 60  # Slurm's unix sockets live under DIR/spool/<node>/; their paths are limited to 108 bytes

STEPS = 30            # training steps of the gang; one checkpoint per step
STEP_S = 0.3          # seconds per step
STOP_AT_STEP = 6      # provider A's Slurm is stopped once the gang has checkpointed this step

PROVIDERS = (("prov-a", "a-h100", "slurm-a"), ("prov-b", "b-h100", "slurm-b"))
ENGINES = ("slurm", "ray")

def failover_scenario(backend_a: str, backend_b: str, name: str = "live-failover-demo") -> str:
    """Two providers with one 16-GPU cluster each (two 8-GPU NVLink domains), A cheaper than B, each run by
    the named backend: the portfolio of this demo and of the failover tests."""
    return f"""\
name: {name}
start: 2026-01-01
end: 2036-01-01
providers:
  - {{name: prov-a, kind: custom, regions: [local]}}
  - {{name: prov-b, kind: custom, regions: [local]}}
clusters:
  - {{name: a-h100, provider: prov-a, region: local, gpu: H100, domain_size: 8, domains: 2,
     price_per_gpu_hour: 2.0, backend: {backend_a}}}
  - {{name: b-h100, provider: prov-b, region: local, gpu: H100, domain_size: 8, domains: 2,
     price_per_gpu_hour: 3.0, backend: {backend_b}}}
contracts:
  - {{name: a-od, kind: on_demand, provider: prov-a, clusters: [a-h100], start: 2026-01-01, end: 2036-01-01}}
  - {{name: b-od, kind: on_demand, provider: prov-b, clusters: [b-h100], start: 2026-01-01, end: 2036-01-01}}
teams:
  - {{name: research, quota_gpus: 32}}
"""


def train_command(steps: int, step_s: float) -> str:
    """A training loop that resumes from $GPUFLEET_CHECKPOINT_DIR/step and checkpoints every step
    atomically; every rank trains, rank 0 (GPUFLEET_RANK on Ray, SLURM_PROCID under srun) writes."""
    return ('d="$GPUFLEET_CHECKPOINT_DIR"; n=$(cat "$d/step" 2>/dev/null || echo 0); '
            'echo "resume at $n on $GPUFLEET_CLUSTER"; '
            f'while [ "$n" -lt {steps} ]; do n=$((n+1)); '
            'if [ "${GPUFLEET_RANK:-${SLURM_PROCID:-0}}" = 0 ]; then '
            'echo $n > "$d/step.tmp" && mv "$d/step.tmp" "$d/step"; fi; '
            f'sleep {step_s}; done; echo "done at $n"')


SCENARIO = failover_scenario("slurm-a", "slurm-b")
TRAIN = train_command(STEPS, STEP_S)
EXTRA = 'echo "eval on $GPUFLEET_CLUSTER"; sleep 3; echo "eval done"'

TRAIN_JOB = {"name": "train-16", "kind": "training", "team": "research", "gpus": "H100:16", "tp": 8,
             "command": TRAIN, "checkpoint_interval_s": 1}
EXTRA_JOB = {"name": "eval-b", "kind": "batch", "team": "research", "gpus": "H100:1", "providers": ["prov-b"],
             "preemptible": False, "command": EXTRA}

TIMEOUT_START_S = 180     # the gang running on A
TIMEOUT_PROGRESS_S = 120  # the gang checkpointing STOP_AT_STEP
TIMEOUT_END_S = 300       # the gang finishing after A is gone
FINAL = ("succeeded", "failed", "cancelled")


class DemoFailed(Exception):
    """A step of the demo could not be carried out (the failover is then reported as not working)."""


def missing_slurm() -> list[str]:
    """The Slurm programs this machine lacks (daemons and client commands), empty when all are present."""
    return slurm_dev.missing_binaries()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _slurm_dev(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run slurm_dev in a child of its own session, so that a Ctrl-C on the terminal does not reach it: a
    `down` cut short could leave a cluster's daemons stopped with SIGSTOP. A Ctrl-C (or SIGTERM) in the
    demo while it runs lets it finish first. Raises TimeoutExpired (the child is then killed)."""
    cmd = [sys.executable, "-m", "gpufleet.devtools.slurm_dev", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True) as p:
        try:
            so, se = p.communicate(timeout=timeout)
        except KeyboardInterrupt:
            try:
                p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
            raise
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, so, se)


def _down(d: Path, timeout: float = 180) -> str | None:
    """Stop the slurm-dev cluster in D; what went wrong, or None."""
    try:
        r = _slurm_dev("down", str(d), timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"`slurm_dev down {d}` did not finish within {timeout:.0f}s"
    except OSError as e:
        return f"`slurm_dev down {d}`: {e}"
    if r.returncode != 0:
        return r.stderr.strip() or f"`slurm_dev down {d}` exited {r.returncode}"
    return None


@dataclass
class Narrator:
    console: Console
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, msg: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')} +{time.monotonic() - self.t0:5.1f}s[/]  {msg}")


@dataclass
class Cluster:
    name: str
    link: Path            # WORKDIR/NAME
    dir: Path             # where the cluster lives (WORKDIR/NAME, or a short /tmp directory it links to)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.dir / "slurm.conf"

    def nodes_of(self, slurm_job_name: str) -> str | None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_"))}
        env["SLURM_CONF"] = str(self.conf)
        try:
            r = subprocess.run(["squeue", "-h", "-n", slurm_job_name, "-o", "%N"], check=False,
                               capture_output=True, text=True, env=env, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = r.stdout.strip().splitlines()
        return lines[0] if r.returncode == 0 and lines else None


class Demo:
    """The live demo on an engine: Slurm for both providers here; demo_live_ray.RayDemo overrides the hooks
    that start, stop and look at the clusters."""

    engine = "slurm"
    label = "Slurm"            # what runs provider A: "provider A's Slurm"
    providers = PROVIDERS      # (provider, cluster, backend)
    scenario = SCENARIO

    def __init__(self, workdir: Path, say: Callable[[str], None]):
        self.workdir = workdir
        self.say = say
        self.clusters: dict[str, Cluster] = {}
        self.short_dirs: list[Path] = []
        self.starting: dict[str, subprocess.Popen] = {}  # `slurm_dev up` children still starting a cluster
        self.server: subprocess.Popen | None = None
        self.server_log = workdir / "server.log"
        self.token = secrets.token_urlsafe(24)
        self.url = ""
        self.http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {self.token}"})
        self.event_after = 0
        self.events: list[dict] = []

    # -- clusters ---------------------------------------------------------------------------------------
    def _cluster_dir(self, name: str) -> Cluster:
        link = self.workdir / name
        d = link
        if len(str(link.resolve())) > MAX_CLUSTER_DIR:
            d = Path(tempfile.mkdtemp(prefix=f"gpufleet-{name}-", dir="/tmp"))
            self.short_dirs.append(d)
            link.symlink_to(d)
        return Cluster(name, link, d.resolve())

    def start_clusters(self) -> None:
        for name, _, _ in PROVIDERS:
            self.clusters[name] = self._cluster_dir(name)
        procs = self.starting
        for c in self.clusters.values():  # both at once; in their own sessions, stopped by stop_starting
            procs[c.name] = subprocess.Popen(
                [sys.executable, "-m", "gpufleet.devtools.slurm_dev", "up", str(c.dir), "--json", "--clean",
                 "--name", c.name, "--nodes", "2", "--gpus-per-node", "8", "--nodes-per-domain", "1",
                 "--timeout", "120"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                start_new_session=True)
        problems = []
        for name, p in list(procs.items()):
            try:
                so, se = p.communicate(timeout=240)
            except subprocess.TimeoutExpired:
                p.kill()
                so, se = p.communicate()
                se = f"`slurm_dev up` did not finish within 240s\n{se}"
            del procs[name]
            if p.returncode != 0:
                problems.append(f"{name}: {se.strip() or 'exit ' + str(p.returncode)}")
                continue
            try:
                self.clusters[name].info = json.loads(so.strip().splitlines()[-1])
            except (ValueError, IndexError):
                problems.append(f"{name}: `slurm_dev up` printed no cluster description: {so[-300:]!r}")
        if problems:
            raise DemoFailed("could not start the Slurm clusters:\n" + "\n".join(problems))
        for c in self.clusters.values():
            i = c.info
            self.say(f"Slurm cluster [bold]{c.name}[/] up: slurmctld on 127.0.0.1:{i['controller_port']}, "
                     f"nodes {', '.join(i['nodes'])} x {i['gpus_per_node']} GPUs (one NVLink domain each)")

    def stop_starting(self) -> None:
        """Kill the `slurm_dev up` children still running (interrupted while the clusters start), so that
        none starts a daemon after cleanup's `down`."""
        for p in self.starting.values():
            if p.poll() is None:
                p.kill()
        for p in self.starting.values():
            try:
                p.communicate(timeout=30)
            except (subprocess.TimeoutExpired, OSError, ValueError):
                pass
        self.starting.clear()

    def stop_cluster(self, name: str) -> None:
        problem = _down(self.clusters[name].dir)
        if problem:
            raise DemoFailed(f"could not stop {name}: {problem}")

    def stop_provider_a(self) -> None:
        """Provider A goes away under the gang, all at once."""
        self.say("[bold red]stopping provider A's Slurm[/] (slurmctld, both slurmds and the gang's processes)")
        self.stop_cluster("prov-a")

    def locates(self, provider: str) -> bool:
        """Whether where() can tell on which nodes an attempt on PROVIDER runs."""
        return provider in self.clusters

    def where(self, provider: str, jid: int, attempt: int, placement: dict) -> tuple[str, str] | None:
        """(nodes, narration) of a running attempt, or None while its scheduler does not say."""
        name = f"gpufleet-{jid}-{attempt}"
        nodes = self.clusters[provider].nodes_of(name)
        if not nodes:
            return None
        return nodes, f"{provider}'s Slurm runs it as job {name} on nodes [bold]{nodes}[/]"

    def node_labels(self) -> dict[str, str]:
        """How the report names the nodes of an attempt on each provider."""
        return {prov: "Slurm nodes" for prov, _, _ in self.providers}

    def backends_text(self) -> str:
        return "".join(f"{be}: {{kind: slurm, conf: {self.clusters[prov].conf}, cluster: {cl}}}\n"
                       for prov, cl, be in self.providers)

    def stoppers(self) -> list[tuple[str, Callable[[], str | None]]]:
        """What cleanup calls to stop the clusters, one at a time (each returns a problem or None)."""
        return [(f"stopping {name}", partial(_down, c.dir)) for name, c in self.clusters.items()]

    def leftover_processes(self) -> dict[str, int]:
        """Slurm processes still running for each cluster of the demo."""
        return {n: len(slurm_dev.cluster_processes(c.dir)) for n, c in self.clusters.items()}

    def clusters_doc(self) -> dict[str, dict]:
        return {n: {"dir": str(c.dir), "nodes": c.info.get("nodes"),
                    "controller_port": c.info.get("controller_port")} for n, c in self.clusters.items()}

    # -- server -----------------------------------------------------------------------------------------
    def start_server(self) -> None:
        (self.workdir / "scenario.yaml").write_text(self.scenario)
        (self.workdir / "backends.yaml").write_text(self.backends_text())
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "GPUFLEET_ADMIN_TOKEN": self.token}
        with open(self.server_log, "ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "gpufleet", "serve", "--db", f"sqlite:///{self.workdir / 'gpufleet.db'}",
                 "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(self.workdir),
                 "--scenario", str(self.workdir / "scenario.yaml"), "--backend", self.providers[0][2],
                 "--backends", str(self.workdir / "backends.yaml"), "--poll", "0.3"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # Ctrl-C reaches the demo, which stops the server itself
        end = time.monotonic() + 90
        while True:
            if self.server.poll() is not None:
                raise DemoFailed(f"gpufleet serve exited ({self.server.returncode}):\n{self._server_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise DemoFailed(f"gpufleet serve did not answer within 90s:\n{self._server_tail()}")
            time.sleep(0.1)
        routes = ", ".join(f"{be} -> {prov}" for prov, _, be in self.providers)
        self.say(f"gpufleet serve up at {self.url} (SQLite in the work dir; backends {routes}; "
                 "polling every 0.3s)")

    def server_alive(self) -> bool:
        """The server process is running and answers /health."""
        if self.server is None or self.server.poll() is not None:
            return False
        try:
            return httpx.get(self.url + "/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def _server_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop_server(self) -> None:
        p = self.server
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    # -- API --------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, self.url + path, **kw)
        except httpx.HTTPError as e:
            raise DemoFailed(f"{method} {path}: {e}") from e
        if r.status_code >= 400:
            raise DemoFailed(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r

    def submit(self, spec: dict) -> int:
        return int(self.api("POST", "/v1/jobs", json={"job": spec}).json()["id"])

    def job(self, jid: int) -> dict:
        return self.api("GET", f"/v1/jobs/{jid}").json()

    def new_events(self) -> list[dict]:
        evs = self.api("GET", "/v1/events", params={"after": self.event_after}).json()
        if evs:
            self.event_after = evs[-1]["id"]
            self.events += evs
        return evs

    def logs(self, jid: int) -> str:
        try:
            return self.api("GET", f"/v1/jobs/{jid}/logs").text
        except DemoFailed:
            return ""

    def step(self, jid: int) -> int | None:
        try:
            return int((self.workdir / "checkpoints" / str(jid) / "step").read_text().strip() or 0)
        except (OSError, ValueError):
            return None


def _attempts(job: dict) -> list[dict]:
    return [{"attempt": p["attempt"], "cluster": p["cluster"], "provider": p["provider"], "backend": p["backend"],
             "outcome": p["outcome"]} for p in job.get("placements", [])]


def _story(d: Demo, jid: int, extra: int) -> dict[str, Any]:
    """Drive the demo once the clusters and the server are up; the result document (without cleanup)."""
    say = d.say
    res: dict[str, Any] = {"job": {"id": jid, "name": TRAIN_JOB["name"], "gpus": 16, "tp": 8, "steps": STEPS},
                           "extra_job": {"id": extra, "name": EXTRA_JOB["name"]}}
    nodes: dict[int, str] = {}
    seen_running: set[int] = set()
    find_nodes: dict[int, tuple[str, dict]] = {}  # attempt -> (provider, placement) to ask where it runs
    stopped: set[str] = set()
    extra_started = False
    last_step: int | None = None
    state: dict[str, int | None] = {"resumed": None}
    extra_reported = False

    def watch() -> dict:
        nonlocal last_step, extra_reported, extra_started
        for e in d.new_events():
            if e["kind"] == "capacity_lost":
                msg = " ".join(e["message"].split())
                say(f"[bold red]capacity lost[/]: {escape(msg if len(msg) < 200 else msg[:197] + '...')}")
            elif e["kind"] == "requeued" and e["job_id"] == jid:
                say(f"[yellow]requeued[/] job {jid}: {escape(e['message'])}")
                if "last_step_on_a" in res["job"] and "requeued" not in state:
                    state["requeued"] = 1
                    say(f"the last checkpoint provider A wrote: step {res['job']['last_step_on_a']}")
        job = d.job(jid)
        att = job["attempt"]
        if job["state"] == "running" and att not in seen_running:
            seen_running.add(att)
            pl = job["placements"][-1]
            domains = sorted({int(part[0]) for part in pl["parts"]})
            say(f"job {jid} [green]running[/] (attempt {att}) on [bold]{pl['provider']}[/]'s cluster "
                f"{pl['cluster']} via {pl['backend']}, NVLink domains {', '.join(map(str, domains))}")
            if d.locates(pl["provider"]):
                find_nodes[att] = (pl["provider"], pl)
        for a, (prov, pl) in list(find_nodes.items()):
            if prov in stopped or job["state"] != "running":
                del find_nodes[a]
                continue
            where = d.where(prov, jid, a, pl)
            if where:
                nodes[a] = where[0]
                del find_nodes[a]
                say(where[1])
        step = d.step(jid)
        if step is not None and step != last_step and job["state"] == "running":
            if state["resumed"] is None and att > 1:
                m = re.search(r"resume at (\d+) on (\S+)", d.logs(jid))
                if m:
                    state["resumed"] = int(m.group(1))
                    say(f"job {jid} [green]resumed from checkpoint step {m.group(1)}[/] on {m.group(2)}")
            say(f"job {jid} checkpoint step {step}/{STEPS}")
            last_step = step
        if not extra_reported:
            ej = d.job(extra)
            if ej["state"] == "running" and not extra_started:
                extra_started = True
                say(f"extra job {extra} ({EXTRA_JOB['name']}) running on {ej['placements'][-1]['cluster']}")
            if ej["state"] in FINAL:
                extra_reported = True
                pl = ej["placements"][-1] if ej["placements"] else {}
                say(f"extra job {extra} ({EXTRA_JOB['name']}, 1 GPU on prov-b) {ej['state']} on "
                    f"{pl.get('cluster', '?')}, attempt {ej['attempt']}")
        return job

    def until(pred: Callable[[dict], bool], timeout: float, what: str) -> dict:
        end = time.monotonic() + timeout
        while True:
            job = watch()
            if pred(job):
                return job
            if job["state"] in FINAL:
                raise DemoFailed(f"job {jid} ended {job['state']} while waiting for {what}")
            if time.monotonic() > end:
                raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what} (job {jid} {job['state']})")
            if d.server is not None and d.server.poll() is not None:
                raise DemoFailed(f"gpufleet serve exited ({d.server.returncode}):\n{d._server_tail()}")
            time.sleep(0.3)

    job = until(lambda j: j["state"] == "running", TIMEOUT_START_S, "the gang to run")
    first = job["placements"][-1]
    if first["provider"] != "prov-a":
        raise DemoFailed(f"the gang started on {first['provider']}, not on the cheaper prov-a")
    until(lambda j: (d.step(jid) or 0) >= STOP_AT_STEP, TIMEOUT_PROGRESS_S, f"checkpoint step {STOP_AT_STEP}")
    t_stop = time.monotonic()
    res["stopped_at"] = time.time()  # wall clock, comparable with the server's event times
    stopped.add("prov-a")
    d.stop_provider_a()
    last_step = d.step(jid)
    res["job"]["last_step_on_a"] = last_step  # A's processes are gone: nothing writes it until B runs
    say(f"provider A's {d.label} is gone; waiting for gpufleet to notice")
    job = until(lambda j: j["attempt"] >= 2 and j["state"] == "running", TIMEOUT_END_S,
                "the gang to run again")
    res["failover_s"] = round(time.monotonic() - t_stop, 1)
    job = until(lambda j: j["state"] in FINAL, TIMEOUT_END_S, "the gang to finish")
    say(f"job {jid} [bold green]{job['state']}[/]" if job["state"] == "succeeded" else
        f"job {jid} [bold red]{job['state']}[/]")
    log = d.logs(jid)
    m = re.search(r"resume at (\d+) on (\S+)", log)
    if m and state["resumed"] is None:
        state["resumed"] = int(m.group(1))
        say(f"job {jid} resumed from checkpoint step {m.group(1)} on {m.group(2)}")
    done = re.search(r"done at (\d+)", log)
    for _ in range(40):  # the extra job may still be finishing
        if extra_reported:
            break
        watch()
        time.sleep(0.3)
    ej = d.job(extra)
    atts = _attempts(job)
    for a in atts:
        a["nodes"] = nodes.get(a["attempt"])
    res["job"].update({"state": job["state"], "attempts": atts, "lost_gpu_hours": job["lost_gpu_hours"],
                       "resumed_from_step": state["resumed"], "final_step": int(done.group(1)) if done else None})
    res["extra_job"].update({"state": ej["state"], "attempt": ej["attempt"], "attempts": _attempts(ej)})
    queue = d.api("GET", "/v1/jobs").json()
    by_state: dict[str, int] = {}
    for j in queue:
        by_state[j["state"]] = by_state.get(j["state"], 0) + 1
    others = [j for j in queue if j["id"] != jid]
    res["server_alive"] = d.server_alive()
    say("gpufleet serve is still up and answering" if res["server_alive"] else
        "[bold red]gpufleet serve is gone[/]")
    res["queue"] = {"jobs": len(queue), "by_state": by_state,
                    "other_jobs_lost": sum(1 for j in others if j["state"] != "succeeded" or j["attempt"] != 1
                                           or j["lost_gpu_hours"] > 0)}
    res["capacity_lost"] = [{"target": e["detail"].get("target"), "message": e["message"]}
                            for e in d.events if e["kind"] == "capacity_lost"]
    res["events"] = [{"at": e["at"], "kind": e["kind"], "job_id": e["job_id"], "message": e["message"]}
                     for e in d.events]
    return res


def _problems(res: dict) -> list[str]:
    """Why the result does not show a working failover (empty when it does)."""
    p = []
    job, ex = res.get("job", {}), res.get("extra_job", {})
    if res.get("error"):
        p.append(res["error"])
    if not job.get("attempts"):
        return p or ["the gang never ran"]
    if job.get("state") != "succeeded":
        p.append(f"the gang ended {job.get('state')}")
    if [a["provider"] for a in job["attempts"]] != ["prov-a", "prov-b"]:
        p.append(f"the gang ran on {[a['provider'] for a in job['attempts']]}, not prov-a then prov-b")
    elif job["attempts"][0]["outcome"] != "lost":
        p.append(f"the attempt on prov-a ended {job['attempts'][0]['outcome']}, not lost")
    if not job.get("lost_gpu_hours", 0) > 0:
        p.append("no lost GPU-hours were reported")
    if not (job.get("resumed_from_step") or 0) >= 1:
        p.append("the gang did not resume from a checkpoint")
    elif job.get("last_step_on_a") is not None and job["resumed_from_step"] < job["last_step_on_a"]:
        p.append(f"the gang resumed from step {job['resumed_from_step']}, behind A's last checkpoint "
                 f"{job['last_step_on_a']}")
    if job.get("final_step") != STEPS:
        p.append(f"the gang did not reach step {STEPS}")
    if [c["target"] for c in res.get("capacity_lost", [])] != ["a-h100"]:
        p.append(f"capacity lost on {[c['target'] for c in res.get('capacity_lost', [])]}, expected a-h100 only")
    if ex.get("state") != "succeeded" or [a["provider"] for a in ex.get("attempts", [])] != ["prov-b"]:
        p.append(f"the extra job ended {ex.get('state')} after {ex.get('attempts')}")
    if res.get("queue", {}).get("other_jobs_lost"):
        p.append(f"{res['queue']['other_jobs_lost']} other job(s) were affected")
    if res.get("server_alive") is False:
        p.append("gpufleet serve did not survive the failover")
    left = {k: v for k, v in res.get("leftover_processes", {}).items() if v}
    if left:
        p.append(f"{_label(res)} processes left running: {left}")
    p += [f"cleanup: {e}" for e in res.get("cleanup_errors", [])]
    return p


def _label(res: dict) -> str:
    return {"slurm": "Slurm", "ray": "Ray"}.get(res.get("engine", "slurm"), "Slurm")


def _report(res: dict) -> None:
    job, ex = res["job"], res["extra_job"]
    label = _label(res)
    out.print()
    out.print("[bold]Failover report[/]")
    for a in job.get("attempts", []):
        where = res.get("node_labels", {}).get(a["provider"], "Slurm nodes")
        if where.endswith("nodes"):
            where = f"{where} {a.get('nodes') or '?'}"
        out.print(f"  attempt {a['attempt']}: {a['provider']} / {a['cluster']} (backend {a['backend']}), "
                  f"{where}: {a['outcome'] or 'running'}")
    if "lost_gpu_hours" in job:
        out.print(f"  lost work: {job['lost_gpu_hours']:.4f} GPU-hours = {job['lost_gpu_hours'] * 3600:,.0f} "
                  "GPU-seconds (16 GPUs since the last checkpoint on prov-a)")
        out.print(f"  last checkpoint on prov-a: step {job.get('last_step_on_a')}; resumed on prov-b from step "
                  f"{job.get('resumed_from_step')}; finished at step {job.get('final_step')} of {STEPS}")
    if "failover_s" in res:
        out.print(f"  from stopping prov-a's {label} to running on prov-b: {res['failover_s']:.1f}s")
    if "server_alive" in res:
        out.print(f"  gpufleet serve after the failover: {'up' if res['server_alive'] else '[red]gone[/]'}")
    if "state" in ex:
        where = ", ".join(a["provider"] for a in ex.get("attempts", []))
        out.print(f"  extra job {ex['id']} ({ex['name']}): {ex['state']} on {where or '-'} "
                  f"in {ex['attempt']} attempt(s)")
    if "queue" in res:
        q = res["queue"]
        out.print(f"  queue: {q['jobs']} jobs, {', '.join(f'{n} {s}' for s, n in q['by_state'].items())}; "
                  f"other jobs lost or requeued: {q['other_jobs_lost']}")
    left = res.get("leftover_processes", {})
    out.print("  cleanup: server stopped, " + ("Slurm clusters stopped" if label == "Slurm" else
                                                "Ray cluster stopped")
              + ("" if not any(left.values()) else f" [red](processes left: {left})[/]")
              + ("" if not res.get("cleanup_errors") else f" [red]({len(res['cleanup_errors'])} error(s))[/]")
              + (f"; work dir kept at {res['workdir']}" if res.get("kept") else "; work dir removed"))
    out.print(f"  wall time: {res['wall_s']:.1f}s")
    if res["ok"]:
        out.print("[bold green]failover worked[/]: the gang finished on provider B from its last checkpoint, "
                  "and nothing else was lost")
    else:
        out.print("[bold red]failover did not work[/]:")
        for p in res["problems"]:
            out.print(f"  - {escape(p)}")


def _refuse(doc: dict, msg: str, as_json: bool, json_out: str | None, code: int) -> int:
    """The demo does not start: the document (stdout or file) and the message on stderr."""
    if as_json:
        emit_json(doc)
    elif json_out:
        Path(json_out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    err.print(f"[bold red]error:[/] {escape(msg)}")
    return code


def run_live(workdir: str | None, keep: bool, json_out: str | None = None, engine: str = "slurm") -> int:
    """The whole demo; returns the exit code. json_out "-": the result document on stdout instead of the
    narration and report (which go to stderr); a path: the document written there as well. engine "ray":
    provider A on a local Ray cluster, provider B local processes (demo_live_ray)."""
    as_json = json_out == "-"
    if engine not in ENGINES:
        return _refuse({"ok": False, "error": "bad_engine", "engine": engine, "engines": list(ENGINES)},
                       f"--engine {engine}: expected one of {', '.join(ENGINES)}", as_json, json_out,
                       EXIT_BAD_INPUT)
    wd = Path(workdir).resolve() if workdir else None
    if wd is not None:
        problem = workdir_problem(wd)
        if problem:
            return _refuse({"ok": False, "error": "workdir_refused", "workdir": str(wd), "message": problem},
                           problem, as_json, json_out, EXIT_BAD_INPUT)
    demo_class: type[Demo] = Demo
    if engine == "ray":
        from . import demo_live_ray
        why = demo_live_ray.ray_missing()
        if why:
            msg = (f"Ray is not installed here ({why}); `--engine ray` runs provider A on a local Ray cluster. "
                   f"Install it with: {demo_live_ray.INSTALL_HINT}")
            return _refuse({"ok": False, "error": "ray_missing", "engine": engine,
                            "install": demo_live_ray.INSTALL_HINT}, msg, as_json, json_out, EXIT_NO_SLURM)
        demo_class = demo_live_ray.RayDemo
    else:
        missing = missing_slurm()
        if missing:
            msg = (f"Slurm is not installed here (missing {', '.join(missing)}); the live demo runs two local "
                   f"Slurm clusters. Install them with: {INSTALL_HINT}")
            return _refuse({"ok": False, "error": "slurm_missing", "missing": missing, "install": INSTALL_HINT},
                           msg, as_json, json_out, EXIT_NO_SLURM)
    t0 = time.monotonic()
    say = Narrator(err if as_json else out, t0)
    if wd is not None:
        created = not wd.exists()
        wd.mkdir(parents=True, exist_ok=True)
        if (wd / MARKER).is_file():  # a previous run's work dir: stop its clusters, start afresh
            _stop_previous(wd, say)
            _remove_outputs(wd)
    else:
        wd = Path(tempfile.mkdtemp(prefix="gpufleet-demo-", dir="/tmp"))
        created = True
    (wd / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    d = demo_class(wd, say)
    res: dict[str, Any] = {"engine": d.engine, "workdir": str(wd), "job": {}, "extra_job": {}}
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM") and _main_thread():
        signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    try:
        say(f"live failover demo in {wd}" + ("" if engine == "slurm" else f" (engine {engine})"))
        d.start_clusters()
        d.start_server()
        jid = d.submit(TRAIN_JOB)
        say(f"submitted job {jid}: {TRAIN_JOB['name']}, 16 x H100, TP=8 (two NVLink domains), "
            f"{STEPS} steps, a checkpoint every step")
        extra = d.submit(EXTRA_JOB)
        say(f"submitted job {extra}: {EXTRA_JOB['name']}, 1 x H100 batch job pinned to prov-b")
        res.update(_story(d, jid, extra))
    except DemoFailed as e:
        res["error"] = str(e)
        say(f"[bold red]{escape(str(e))}[/]")
    except (subprocess.SubprocessError, OSError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"[bold red]{escape(res['error'])}[/]")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: cleaning up")
    finally:
        # cleanup runs to its end: a second Ctrl-C or SIGTERM does not cut it short
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        if _main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            _cleanup(d, res, keep, created)
            for msg in res.get("cleanup_errors", []):
                say(f"[bold red]cleanup:[/] {escape(msg)}")
            stopped = "both Slurm clusters" if engine == "slurm" else "provider A's Ray cluster"
            say(f"server and {stopped} stopped" if not res.get("cleanup_errors") else
                "cleanup done, with the errors above")
            if keep:
                say(f"work dir kept: {wd}")
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
            if _main_thread():
                signal.signal(signal.SIGTERM, old_term)
    if interrupted:
        raise KeyboardInterrupt
    res["kept"] = keep
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["problems"] = _problems(res)
    res["ok"] = not res["problems"]
    res["clusters"] = d.clusters_doc()
    res["node_labels"] = d.node_labels()
    if keep:
        (wd / "result.json").write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    if as_json:
        emit_json(res)
    else:
        if json_out:
            Path(json_out).write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
        _report(res)
    return EXIT_OK if res["ok"] else EXIT_FAILURE


def _cleanup(d: Demo, res: dict, keep: bool, created: bool) -> None:
    """Stop everything the demo started and, without keep, remove what it wrote. Every step runs whatever
    the one before raised; what went wrong is listed in res["cleanup_errors"]."""
    errors: list[str] = []

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - reported, and the next step still runs
            errors.append(f"{what}: {type(e).__name__}: {e}")
            return None

    attempt("stopping the Slurm clusters' start-up", d.stop_starting)
    attempt("stopping gpufleet serve", d.stop_server)
    for what, stop in attempt("listing the clusters to stop", d.stoppers) or []:
        problem = attempt(what, stop)
        if problem:
            errors.append(f"{what}: {problem}")
    res["leftover_processes"] = attempt(f"looking for leftover {d.label} processes", d.leftover_processes) or {}
    attempt("closing the HTTP client", d.http.close)
    if not keep:
        for sd in d.short_dirs:
            attempt(f"removing {sd}", partial(shutil.rmtree, sd, ignore_errors=True))
        if created:  # the demo made this directory: all of it is the demo's
            attempt(f"removing {d.workdir}", partial(shutil.rmtree, d.workdir, ignore_errors=True))
        else:
            attempt(f"removing the demo's files in {d.workdir}", partial(_remove_outputs, d.workdir, marker=True))
    if errors:
        res["cleanup_errors"] = errors


MARKER = ".gpufleet-demo"  # in every work dir of the demo; --workdir refuses a non-empty dir without it
MARKER_TEXT = ("A work dir of `gpufleet demo --live`. A run here replaces the files a previous run wrote\n"
               "(prov-a, prov-b, checkpoints, gpufleet.db, server.log, ...) and nothing else.\n")

# what a run writes in its work dir: removed before a run and, without --keep, after it
OUTPUTS = ("prov-a", "prov-b", "slurm-a", "slurm-b", "ray-a", "local-b", "checkpoints", "gpufleet.db", "gpufleet.db-wal",
           "gpufleet.db-shm", "gpufleet.db-journal", "scenario.yaml", "backends.yaml", "server.log", "result.json")


def _stop_previous(wd: Path, say: Callable[[str], None]) -> None:
    """Stop what a previous run in WD may have left running (a killed run), whichever its engine: its
    server, its Slurm clusters, its Ray cluster."""
    for pid in _demo_servers(wd):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            say(f"stopped the previous run's gpufleet serve (pid {pid})")
    for name, _, _ in PROVIDERS:
        p = wd / name
        if p.is_symlink() or p.exists():
            problem = _down(p.resolve())
            if problem:
                say(f"[yellow]could not stop the previous run's {name}[/]: {escape(problem)}")
    ray_dir = wd / "ray-a"
    if ray_dir.is_symlink():
        from .demo_live_ray import kill_processes_of, own_temp_dir
        target = ray_dir.resolve()
        if own_temp_dir(target):
            killed = kill_processes_of(target)
            if killed:
                say(f"stopped {killed} process(es) of the previous run's Ray cluster")


def _demo_servers(wd: Path) -> list[int]:
    """Live `gpufleet serve` processes that a run of the demo in WD started (their database and data dir
    are WD's)."""
    db = f"sqlite:///{wd / 'gpufleet.db'}"
    found = []
    for pid in procs.mentioning(str(wd)):
        args = procs.argv(pid)
        if "gpufleet" in args and "serve" in args and _after(args, "--db") == db and \
                _after(args, "--data-dir") == str(wd):
            found.append(pid)
    return found


def _after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def workdir_problem(wd: Path) -> str | None:
    """Why the demo must not work in WD (None when it may): WD must be new, empty, or a work dir of the demo
    (holding MARKER), so that the demo never removes files it did not write."""
    if not wd.exists():
        return None if not wd.is_symlink() else f"--workdir {wd} is a broken symbolic link"
    if not wd.is_dir():
        return f"--workdir {wd} is not a directory"
    if (wd / MARKER).is_file():
        return None
    try:
        if not any(wd.iterdir()):
            return None
    except OSError as e:
        return f"--workdir {wd}: {e}"
    return (f"--workdir {wd} is not empty and is not a work dir of this demo (it has no {MARKER} file); "
            "the demo would replace its checkpoints/, server.log, ... there: give a new or empty directory, "
            "or leave out --workdir")


def _remove_outputs(wd: Path, marker: bool = False) -> None:
    """Remove what a run wrote in WD (and the short /tmp cluster directories its links point to); with
    marker, the marker file too."""
    tmp = Path("/tmp").resolve()
    for name in OUTPUTS:
        p = wd / name
        if p.is_symlink():
            target = p.resolve()
            if target.parent == tmp and target.name.startswith(f"gpufleet-{name}-") and target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            p.unlink()
        elif p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
    if marker:
        (wd / MARKER).unlink(missing_ok=True)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
