"""What-if sweeps in parallel: 32 runs of examples/small.yaml (8 seeds x base, drop:aws, drop:oci, an OCI
outage), serial against `--workers 2`, in the same run.

    python bench/sweep.py                 # process pool (the default where Ray is not installed)
    python bench/sweep.py --engine ray    # a local Ray started for the sweep
    python bench/sweep.py --repeat 3 --json

Each side runs the very tasks `gpufleet sweep` runs (cli/sweep.execute); the results of both sides must be
equal apart from timings (checked). Prints one JSON line: serial_s and parallel_s (medians), speedup.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gpufleet.cli.sweep import Task, execute
from gpufleet.files import load_scenario
from gpufleet.simulation.sweep import comparable, runs

SMALL = Path(__file__).resolve().parents[1] / "examples" / "small.yaml"
WHAT_IFS = ["drop:aws", "drop:oci", "fail:oci@2026-06-01/14d"]


def tasks() -> list[Task]:
    p = load_scenario(str(SMALL))
    text = SMALL.read_text(encoding="utf-8")
    return [(text, str(SMALL), r, None, True) for r in runs(p, 8, WHAT_IFS, [None])]


def timed(work: list[Task], engine: str, workers: int) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    out = execute(work, engine, workers, None, lambda i: None)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="process", choices=["process", "ray"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = tasks()
    serial, parallel = [], []
    for _ in range(a.repeat):
        s, one = timed(work, "process", 1)
        q, many = timed(work, a.engine, a.workers)
        assert [comparable(r) for r in one] == [comparable(r) for r in many], "parallel results differ"
        serial.append(s)
        parallel.append(q)
    doc = {"runs": len(work), "engine": a.engine, "workers": a.workers, "repeat": a.repeat,
           "serial_s": statistics.median(serial), "parallel_s": statistics.median(parallel),
           "speedup": statistics.median(serial) / statistics.median(parallel),
           "serial_all_s": serial, "parallel_all_s": parallel}
    print(json.dumps(doc) if a.json else json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
