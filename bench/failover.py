"""How long a failover takes: `gpufleet demo --live --json` run several times (two local Slurm clusters,
provider A's Slurm stopped under a 16-GPU training gang), split into its phases from the server's events.

    python bench/failover.py               # 3 runs, provider A on Slurm
    python bench/failover.py --engine ray  # provider A on a Ray cluster that vanishes whole, B local
    python bench/failover.py --runs 5 --json

Per run, in seconds (server event times; `stopped_at` is when the demo stopped A's Slurm):
- `cold_start_s`: submitted -> started on provider A (the baseline: a first start on an idle Slurm cluster)
- `detect_s`: A stopped -> capacity_lost (A's backend unreachable for 3 polls: on Slurm each waits for
  MessageTimeout, 5 s; on Ray the first waits out the isolated backend's call deadline, then fail at once)
- `restart_s`: capacity_lost -> started on provider B (requeue, placement, sbatch, Slurm scheduling)
- `failover_s`: A stopped -> running on B, as the demo measures it
Needs Debian's slurmctld, slurmd and slurm-client, or Ray for --engine ray (the demo exits 3 without them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def one_run(engine: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "gpufleet", "demo", "--live", "--engine", engine, "--json"],
                       capture_output=True,
                       text=True, timeout=600, check=False)
    if r.returncode != 0:
        raise SystemExit(f"demo --live failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    doc = json.loads(r.stdout)
    ev = doc["events"]
    gang = doc["job"]["id"]

    def at(kind: str, nth: int = 0, job: int | None = gang) -> float:
        hits = [e["at"] for e in ev if e["kind"] == kind and (job is None or e["job_id"] == job)]
        return hits[nth]

    lost = at("capacity_lost", job=None)
    return {"cold_start_s": at("started") - at("submitted"), "detect_s": lost - doc["stopped_at"],
            "restart_s": at("started", 1) - lost, "failover_s": doc["failover_s"], "wall_s": doc["wall_s"],
            "lost_gpu_hours": doc["job"]["lost_gpu_hours"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engine", choices=("slurm", "ray"), default="slurm")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs = []
    for i in range(a.runs):
        runs.append(one_run(a.engine))
        print(f"run {i + 1}/{a.runs}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()), file=sys.stderr)
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    med["restart_vs_cold_start"] = round(med["restart_s"] / med["cold_start_s"], 2)
    summary = {"engine": a.engine, "runs": a.runs, "median": med}
    print(json.dumps(summary) if a.json else "\n".join(f"{k:>22}: {v}" for k, v in med.items()))


if __name__ == "__main__":
    main()
