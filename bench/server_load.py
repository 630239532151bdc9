"""Load on the live control plane: sustained submissions per second over HTTP on loopback, and the time
from submission to placement, with 10,000 jobs queued on a 500,000-GPU portfolio.

    python bench/server_load.py                 # defaults: 504,008 GPUs, 10,000 queued, 3 x 20,000 submissions
    python bench/server_load.py --json          # one JSON summary on stdout (progress goes to stderr)
    python bench/server_load.py --rate 2000     # paced at 2,000/s instead of as fast as the server answers
    python bench/server_load.py --db postgresql://user:pw@host/empty_db   # an EMPTY database of your own

Targets (the issue): >= 2,000 submissions/s acknowledged, p99 submit -> placement <= 50 ms.

What it does:
1. Writes a scenario of 10 NVL72 clusters x 500 racks (360,000 GB200/GB300 GPUs) and 12 HGX clusters x
   1,500 nodes (144,000 H100/H200/B200 GPUs) across 6 providers, plus one 8-GPU "waitlist" cluster on its
   own provider: 504,008 GPUs, start 2026-01-01, end 2030-01-01; teams `research`, `backlog` and `pretrain`
   (quota 600,000 each) and `overquota` (quota 0). Checks it with `gpufleet validate`.
2. Starts `gpufleet serve --backend fake` (work "runs" forever in memory; no processes) on a free loopback
   port with a fresh SQLite database in a temp dir (or --db), and waits for /health.
3. Queues the backlog: `--queued` + 1 jobs of team `backlog`, each `H100:8` pinned to provider `waitlist`.
   The first takes the only node there; the other 10,000 wait for capacity (reason "no cluster can take it
   now"), as work waiting behind a full cluster does. Checks GET /v1/jobs?state=queued&limit=100000.
   (`--queued-kind quota`: team `overquota` with quota 0 instead; `gang`: 65,592-GPU training gangs that no
   cluster's fabric can hold. All three stay queued; which one is used is in the output.)
4. The measured phase, `--repeat` times on the same server: `--jobs` batch jobs of 1, 2, 4 or 8 GPUs (50%,
   15%, 15%, 20%), 40% on HGX types and 60% on NVL72 types, each with a unique idempotency key, sent by a
   raw asyncio HTTP/1.1 client (bench/load_client.py) over `--concurrency` keep-alive connections from this
   process; the server runs in its own process. Closed loop by default (the rate the server sustains);
   `--rate R` paces the submissions at R/s instead (latency counted from when each request was due).

Figures per phase (the summary gives the median of each over the repeats):
- `submissions_per_s`: 2xx answers / (last answer - first send); `errors`: non-2xx answers or failed requests.
- `http_p50_ms` / `http_p99_ms`: client-side latency of POST /v1/jobs (send -> 201). A submission is answered
  once its transaction commits, and a job that fits is placed in that same transaction, so for those jobs
  this is also the time to a committed placement as the client sees it.
- `e2e_place_p50_ms` / `e2e_place_p99_ms`: the headline submit -> placement figure: placed_at (server, time
  of the placement decision, just before the commit) - the moment the client sent the request (same machine,
  same wall clock). It includes HTTP parsing and validation and the wait for the control loop's next turn;
  this is the figure held against the 50 ms target.
- `db_place_p50_ms` / `db_place_p99_ms`: placed_at - submitted_at from the `jobs` table: the time inside
  the control loop's turn from recording the job to placing it (what /metrics' histogram
  gpufleet_submit_to_place_seconds observes). It leaves out the wait for the turn, so it flatters.
- `still_queued`: measured jobs not placed when the phase ended (placed jobs only count in the latencies).
- `server_cpu_share` (1.0 = one core busy) and `server_cpu_ms_per_submission`, from /proc: the server is
  one Python process, so 1.0 means it is bound by the GIL; ms per submission says what one core buys.
Closed loop (the default) measures the most the server sustains; its latencies then include the queueing
of `--concurrency` requests in flight. For latency at a given load use `--rate` below that maximum.

Default sizes take about 100 s (longer on a busy machine). The load generator and the server share this
machine's two cores, so a busy neighbour process moves the figures; the load average is printed with them.
GPUFLEET_EXE names another `gpufleet` executable to serve (e.g. a wrapper that tries a change) instead of
the one beside this Python.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import build_request, run_load

PROVIDERS = [("aws", "us-east-1"), ("azure", "eastus"), ("oci", "us-ashburn-1"), ("gcp", "us-central1"),
             ("coreweave", "us-east-2"), ("lambda", "us-west-1")]
HGX_TYPES = {"H100": 1.0, "H200": 1.3, "B200": 2.2}
NVL_TYPES = {"GB200": 1.0, "GB300": 1.15}
SIZES = [(1, 0.50), (2, 0.15), (4, 0.15), (8, 0.20)]


def log(msg: str) -> None:
    print(f"[server_load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# == the scenario ==========================================================================================
def scenario_yaml(nvl72_clusters: int, nvl72_racks: int, hgx_clusters: int, hgx_nodes: int) -> tuple[str, int]:
    """A scenario file of >= 500,000 GPUs; returns (text, GPUs)."""
    lines = ["# generated by bench/server_load.py", "name: server-load", "start: 2026-01-01", "end: 2030-01-01",
             "providers:", "  - {name: waitlist, kind: onprem, regions: [us-east-1]}", "clusters:"]
    gpus = 0
    for i in range(nvl72_clusters):
        prov, region = PROVIDERS[i % len(PROVIDERS)]
        lines += [f"  - name: {prov}-nvl72-{i}", f"    provider: {prov}", f"    region: {region}",
                  f"    gpu: {'GB200' if i % 2 == 0 else 'GB300'}", "    domain_size: 72",
                  f"    domains: {nvl72_racks}", f"    price_per_gpu_hour: {8.0 + i % 5:.2f}"]
        gpus += 72 * nvl72_racks
    for i in range(hgx_clusters):
        prov, region = PROVIDERS[i % len(PROVIDERS)]
        lines += [f"  - name: {prov}-hgx-{i}", f"    provider: {prov}", f"    region: {region}",
                  f"    gpu: {['H100', 'H200', 'B200'][i % 3]}", "    domain_size: 8",
                  f"    domains: {hgx_nodes}", f"    price_per_gpu_hour: {3.0 + i % 7:.2f}"]
        gpus += 8 * hgx_nodes
    # One node on a provider of its own: the backlog waits for it.
    lines += ["  - name: waitlist-h100", "    provider: waitlist", "    region: us-east-1", "    gpu: H100",
              "    domain_size: 8", "    domains: 1", "    price_per_gpu_hour: 4.00"]
    gpus += 8
    lines += ["contracts:"] if nvl72_clusters + hgx_clusters else []
    for prov, _ in PROVIDERS[:3]:
        names = [f"{prov}-nvl72-{i}" for i in range(nvl72_clusters) if PROVIDERS[i % len(PROVIDERS)][0] == prov]
        names += [f"{prov}-hgx-{i}" for i in range(hgx_clusters) if PROVIDERS[i % len(PROVIDERS)][0] == prov]
        if not names:
            continue
        lines += [f"  - name: {prov}-commit", "    kind: spend_commitment", f"    provider: {prov}",
                  f"    clusters: [{', '.join(names)}]", "    start: 2026-01-01", "    end: 2030-01-01",
                  "    commitment_usd: 5000000000", "    price_per_gpu_hour: 3.5"]
    lines += ["teams:",
              "  - {name: research, quota_gpus: 600000}",
              "  - {name: pretrain, quota_gpus: 600000}",
              "  - {name: backlog, quota_gpus: 600000}",
              "  - {name: overquota, quota_gpus: 0}",
              "policies:",
              "  concentration_limits:",
              "    - {workload_class: inference, max_share: 0.5}"]
    return "\n".join(lines) + "\n", gpus


# == the server ============================================================================================
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str | None = None, body: dict | None = None, timeout: float = 120.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def gpufleet_exe() -> str:
    """The `gpufleet` beside this Python; GPUFLEET_EXE names another (e.g. a wrapper around a patched build)."""
    if os.environ.get("GPUFLEET_EXE"):
        return os.environ["GPUFLEET_EXE"]
    here = Path(sys.executable).parent / "gpufleet"
    return str(here) if here.exists() else (shutil.which("gpufleet") or "gpufleet")


def start_server(args, tmp: Path, scenario: Path, admin: str, extra: tuple[str, ...] = ()
                 ) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    db = args.db or f"sqlite:///{tmp / 'gpufleet.db'}"
    cmd = [gpufleet_exe(), "serve", "--db", db, "--host", "127.0.0.1", "--port", str(port), "--backend", "fake",
           "--scenario", str(scenario), "--data-dir", str(tmp / "data"), "--poll", str(args.poll), *extra]
    env = dict(os.environ, GPUFLEET_ADMIN_TOKEN=admin)
    env.pop("GPUFLEET_DB", None)
    with open(tmp / "server.log", "wb") as logf:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
        try:
            h = http("GET", base + "/health", timeout=2)
            if h.get("status") == "ok" and h.get("portfolio"):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.perf_counter() - t0 > 300:
            raise SystemExit("the server did not become healthy in 300 s")
        time.sleep(0.1)
    log(f"server pid {proc.pid} healthy on {base} after {time.perf_counter() - t0:.1f} s (db {db.split('@')[-1]})")
    return proc, base, db


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# == requests ==============================================================================================
def submit_bytes(port: int, token: str, job: dict, key: str) -> bytes:
    body = json.dumps({"job": job, "key": key}, separators=(",", ":")).encode()
    return build_request("POST", "/v1/jobs", "127.0.0.1", port, {"Authorization": f"Bearer {token}"}, body)


def backlog_jobs(kind: str, n: int) -> list[tuple[dict[str, Any], str]]:
    out = []
    for i in range(n):
        job: dict[str, Any]
        if kind == "capacity":
            job = {"name": f"waiting-{i}", "kind": "batch", "team": "backlog", "gpus": "H100:8",
                   "providers": ["waitlist"], "command": "true"}
        elif kind == "quota":
            job = {"name": f"overquota-{i}", "kind": "batch", "team": "overquota", "gpus": "H100:8",
                   "command": "true"}
        else:  # gang: bigger than any cluster's fabric (the largest holds 36,000 GPUs)
            job = {"name": f"giant-{i}", "kind": "training", "team": "pretrain", "gpus": "GB200:65592", "tp": 72,
                   "any_of": NVL_TYPES, "priority": 5, "preemptible": True, "command": "true"}
        out.append((job, f"backlog-{i}"))
    return out


def measured_jobs(rep: int, n: int, seed: int) -> list[tuple[dict, str]]:
    rng = random.Random(seed * 1000 + rep)
    sizes, weights = [s for s, _ in SIZES], [w for _, w in SIZES]
    out = []
    for i in range(n):
        g = rng.choices(sizes, weights)[0]
        hgx = rng.random() < 0.4
        types = HGX_TYPES if hgx else NVL_TYPES
        first = next(iter(types))
        job = {"name": f"load-{rep}-{i}", "kind": "batch", "team": "research", "gpus": f"{first}:{g}",
               "any_of": types, "command": "true"}
        out.append((job, f"r{rep}-{i}"))
    return out


# == figures ===============================================================================================
def pct(xs, q: float) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return float(np.percentile(np.asarray(xs), q)) if xs else None


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000.0, 2)


def db_rows(db_url: str, key_prefix: str) -> list[tuple]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from gpufleet.store.db import normalize  # type: ignore[import-untyped]
    eng = create_engine(normalize(db_url), poolclass=NullPool)
    try:
        with eng.connect() as c:
            return list(c.execute(text("SELECT id, submitted_at, placed_at, state FROM jobs WHERE key LIKE :p"),
                                  {"p": key_prefix + "%"}))
    finally:
        eng.dispose()


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process so far, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def phase(args, port: int, token: str, db_url: str, rep: int, server_pid: int) -> dict:
    jobs = measured_jobs(rep, args.jobs, args.seed)
    reqs = [submit_bytes(port, token, j, k) for j, k in jobs]
    la0 = loadavg()
    cpu0 = time.process_time()
    srv0 = cpu_seconds(server_pid)
    res = run_load("127.0.0.1", port, reqs, concurrency=args.concurrency, rate=args.rate,
                   duration_s=args.duration, keep_bodies=True)
    client_cpu = time.process_time() - cpu0
    srv1 = cpu_seconds(server_pid)
    n = res.n
    sent_by_id: dict[int, float] = {}
    assert res.bodies is not None
    for i in range(n):
        if 200 <= res.status[i] < 300:
            sent_by_id[json.loads(res.bodies[i])["id"]] = res.sent_wall[i]
    rows = db_rows(db_url, f"r{rep}-")
    placed = [(jid, sub, pl) for jid, sub, pl, _ in rows if pl is not None]
    wait = [pl - sub for _, sub, pl in placed]
    e2e = [pl - sent_by_id[jid] for jid, _, pl in placed if jid in sent_by_id]
    ok = res.ok
    lat = res.latency_s[:n]
    out: dict[str, Any] = {
        "repeat": rep, "submitted": n, "acknowledged": ok, "errors": n - ok,
        "wall_s": round(res.wall_s, 3),
        "submissions_per_s": round(ok / res.wall_s, 1) if res.wall_s > 0 else None,
        "http_p50_ms": ms(pct(lat, 50)), "http_p99_ms": ms(pct(lat, 99)), "http_max_ms": ms(pct(lat, 100)),
        "db_place_p50_ms": ms(pct(wait, 50)), "db_place_p99_ms": ms(pct(wait, 99)),
        "db_place_max_ms": ms(pct(wait, 100)),
        "e2e_place_p50_ms": ms(pct(e2e, 50)), "e2e_place_p99_ms": ms(pct(e2e, 99)),
        "e2e_place_max_ms": ms(pct(e2e, 100)),
        "client_cpu_share": round(client_cpu / res.wall_s, 2) if res.wall_s > 0 else None,
        "server_cpu_share": round((srv1 - srv0) / res.wall_s, 2) if srv0 is not None and srv1 is not None
        and res.wall_s > 0 else None,
        "server_cpu_ms_per_submission": round((srv1 - srv0) * 1000 / ok, 3) if srv0 is not None and
        srv1 is not None and ok else None,
        "placed": len(placed), "still_queued": sum(1 for *_, st in rows if st == "queued"),
        "loadavg_before": la0, "loadavg_after": loadavg(),
    }
    if res.errors:
        out["first_errors"] = res.errors
    return out


HEADLINE = ("submissions_per_s", "http_p50_ms", "http_p99_ms", "e2e_place_p50_ms", "e2e_place_p99_ms",
            "db_place_p50_ms", "db_place_p99_ms", "server_cpu_share", "server_cpu_ms_per_submission")


def measure(args, tmp: Path, scen: Path, gpus: int, n_clusters: int, extra: tuple[str, ...], t_start: float,
            label: str = "") -> dict:
    """Start a server, queue the backlog, run the measured phases, stop it; the summary of medians."""
    proc = None
    try:
        admin = "gpf_bench_" + secrets.token_urlsafe(24)
        proc, base, db_url = start_server(args, tmp, scen, admin, extra)
        port = int(base.rsplit(":", 1)[1])
        team_tok = {t: http("POST", base + "/v1/tokens", admin, {"team": t, "name": f"load-{t}"})["token"]
                    for t in ("research", "backlog", "pretrain", "overquota")}

        # -- the backlog --------------------------------------------------------------------------------
        extra = 1 if args.queued_kind == "capacity" else 0  # the first takes the waitlist node
        team = {"capacity": "backlog", "quota": "overquota", "gang": "pretrain"}[args.queued_kind]
        breqs = [submit_bytes(port, team_tok[team], j, k) for j, k in backlog_jobs(args.queued_kind, args.queued + extra)]
        t0 = time.perf_counter()
        bres = run_load("127.0.0.1", port, breqs, concurrency=args.concurrency, keep_bodies=False)
        backlog_s = time.perf_counter() - t0
        if bres.ok != len(breqs):
            raise SystemExit(f"backlog: {len(breqs) - bres.ok} submissions failed: {bres.errors}")
        queued = http("GET", base + "/v1/jobs?state=queued&limit=100000", admin)
        reasons: dict[str, int] = {}
        for j in queued:
            r = (j.get("reason") or "").split(";")[0][:90]
            reasons[r] = reasons.get(r, 0) + 1
        log(f"backlog: {len(breqs):,} submitted in {backlog_s:.1f} s ({bres.ok / bres.wall_s:,.0f}/s), "
            f"{len(queued):,} queued ({args.queued_kind}): {reasons}")
        if len(queued) != args.queued:
            raise SystemExit(f"expected {args.queued:,} queued jobs, found {len(queued):,}")

        # -- measured phases ----------------------------------------------------------------------------
        phases = []
        for rep in range(1, args.repeat + 1):
            p = phase(args, port, team_tok["research"], db_url, rep, proc.pid)
            phases.append(p)
            log(f"{label}phase {rep}: {p['acknowledged']:,}/{p['submitted']:,} ok in {p['wall_s']} s = "
                f"{p['submissions_per_s']}/s; http p50/p99 {p['http_p50_ms']}/{p['http_p99_ms']} ms; "
                f"submit->place p50/p99 e2e {p['e2e_place_p50_ms']}/{p['e2e_place_p99_ms']} ms, in the server "
                f"{p['db_place_p50_ms']}/{p['db_place_p99_ms']} ms; still queued {p['still_queued']}; CPU server {p['server_cpu_share']} "
                f"client {p['client_cpu_share']}; load {p['loadavg_after']}")
            if p.get("first_errors"):
                log(f"  errors: {p['first_errors']}")
        health = http("GET", base + "/health")
        queued_end = len(http("GET", base + "/v1/jobs?state=queued&limit=100000", admin))

        def med(k: str):
            xs = [p[k] for p in phases if p.get(k) is not None]
            return round(statistics.median(xs), 2) if xs else None

        headline = HEADLINE
        summary = {
            "bench": "server_load", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "fleet_gpus": gpus, "clusters": n_clusters, "db": "sqlite" if db_url.startswith("sqlite") else "postgresql",
            "backend": "fake", "queued_before": len(queued), "queued_kind": args.queued_kind,
            "queued_reasons": reasons, "jobs_per_phase": args.jobs, "repeat": args.repeat,
            "concurrency": args.concurrency, "rate": args.rate or "closed loop", "poll_s": args.poll,
            **{k: med(k) for k in headline},
            "errors": sum(p["errors"] for p in phases), "still_queued": sum(p["still_queued"] for p in phases),
            "queued_at_end": queued_end, "active_placements_at_end": health.get("active_placements"),
            "gpus_free_at_end": health.get("gpus_free"),
            "targets": {"submissions_per_s": ">= 2000", "e2e_place_p99_ms": "<= 50"},
            "met": None, "loadavg": loadavg(), "cpus": os.cpu_count(), "phases": phases,
            "total_s": round(time.perf_counter() - t_start, 1),
        }
        return summary
    finally:
        if proc is not None:
            stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20_000, help="submissions per measured phase")
    ap.add_argument("--repeat", type=int, default=3, help="measured phases on the same server (medians reported)")
    ap.add_argument("--queued", type=int, default=10_000, help="jobs left queued before measuring")
    ap.add_argument("--queued-kind", choices=("capacity", "quota", "gang"), default="capacity",
                    help="why the backlog waits (see the module docstring)")
    ap.add_argument("--concurrency", type=int, default=64, help="keep-alive connections")
    ap.add_argument("--rate", type=float, default=None, help="pace submissions at this many per second "
                    "(default: closed loop, as fast as answered)")
    ap.add_argument("--duration", type=float, default=None, help="stop a phase after this many seconds")
    ap.add_argument("--poll", type=float, default=1.0, help="the server's --poll (seconds between backend polls)")
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp dir); "
                    "a PostgreSQL database given here must be empty")
    ap.add_argument("--nvl72-clusters", type=int, default=10)
    ap.add_argument("--nvl72-racks", type=int, default=500)
    ap.add_argument("--hgx-clusters", type=int, default=12)
    ap.add_argument("--hgx-nodes", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline", action="store_true", help="also measure a server without the submission fast "
                    "path (gpufleet serve --no-fast-path) in the same run, and report the ratios")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (db, scenario, server log)")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gpufleet-load-"))
    t_start = time.perf_counter()
    try:
        text, gpus = scenario_yaml(args.nvl72_clusters, args.nvl72_racks, args.hgx_clusters, args.hgx_nodes)
        scen = tmp / "scenario.yaml"
        scen.write_text(text)
        v = subprocess.run([gpufleet_exe(), "validate", str(scen)], check=False, capture_output=True,
                           text=True)
        if v.returncode != 0:
            raise SystemExit(f"gpufleet validate failed ({v.returncode}):\n{v.stdout}{v.stderr}")
        n_clusters = args.nvl72_clusters + args.hgx_clusters + 1
        log(f"scenario: {gpus:,} GPUs in {n_clusters} clusters, valid ({scen})")

        summary = measure(args, tmp, scen, gpus, n_clusters, (), t_start)
        if args.baseline:
            # the same load on a fresh server without the submission fast path: the ratio is this run's own
            btmp = tmp / "baseline"
            btmp.mkdir()
            base_summary = measure(args, btmp, scen, gpus, n_clusters, ("--no-fast-path",), t_start, label="baseline ")
            summary["baseline_no_fast_path"] = {k: base_summary[k] for k in HEADLINE + ("errors",)}
            summary["ratio_vs_baseline"] = {
                "submissions_per_s": round(summary["submissions_per_s"] / base_summary["submissions_per_s"], 2),
                "server_cpu_ms_per_submission": round(base_summary["server_cpu_ms_per_submission"]
                                                      / summary["server_cpu_ms_per_submission"], 2)}
        sp, p99 = summary["submissions_per_s"], summary["e2e_place_p99_ms"]
        summary["met"] = {"submissions_per_s": sp is not None and sp >= 2000,
                          "e2e_place_p99_ms": p99 is not None and p99 <= 50}
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"server load: {gpus:,} GPUs / {n_clusters} clusters, {summary['queued_before']:,} queued "
                  f"({args.queued_kind}), "
                  f"{args.repeat} x {args.jobs:,} submissions, {args.concurrency} connections, "
                  f"{'closed loop' if not args.rate else f'paced at {args.rate:g}/s'}; medians over the phases:")
            for k in HEADLINE + ("errors", "still_queued", "queued_at_end"):
                print(f"  {k:<30} {summary[k]}")
            if args.baseline:
                print(f"  baseline (--no-fast-path): {summary['baseline_no_fast_path']}")
                print(f"  ratio vs baseline: {summary['ratio_vs_baseline']}")
            print(f"  targets met: {summary['met']}; load average {summary['loadavg']}; {summary['total_s']} s")
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
