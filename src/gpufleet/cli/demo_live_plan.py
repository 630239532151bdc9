"""What `gpufleet demo --live` runs: the two-provider portfolio, the training gang and the batch job, and how
long each phase may take."""

from __future__ import annotations


class DemoFailed(Exception):
    """The failover did not happen as it should; the message says which step."""


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
