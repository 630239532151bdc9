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

import json
import os
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
from sqlalchemy.exc import SQLAlchemyError

from ..devtools import slurm_dev
from ..server.dispatch import checkpoint_dir
from .common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, emit_json, err, escape, out
from .demo_live_plan import (
    ENGINES,
    EXIT_NO_SLURM,
    EXTRA_JOB,
    INSTALL_HINT,
    MAX_CLUSTER_DIR,
    PROVIDERS,
    SCENARIO,
    STEPS,
    TRAIN_JOB,
    DemoFailed,
)
from .demo_live_report import _problems, _report, _story
from .demo_live_workdir import (
    MARKER,
    MARKER_TEXT,
    _down,
    _remove_outputs,
    _stop_previous,
    workdir_problem,
)


def missing_slurm() -> list[str]:
    """The Slurm programs this machine lacks (daemons and client commands), empty when all are present."""
    return slurm_dev.missing_binaries()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        self.instance: str | None = None   # the server's database identity, once it is there

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
            if self.instance is None:  # the server's database identity keys its checkpoint directories
                from ..store import connect
                from ..store.db import identity
                eng = connect(f"sqlite:///{self.workdir / 'gpufleet.db'}")
                try:
                    self.instance = identity(eng, create=False)
                finally:
                    eng.dispose()
            if self.instance is None:
                return None
            return int((checkpoint_dir(self.workdir, self.instance, jid) / "step").read_text().strip() or 0)
        except (OSError, ValueError, SQLAlchemyError):
            return None


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


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
