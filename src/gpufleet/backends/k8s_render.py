"""Pure rendering of one placement (`Launch`) into a Kubernetes manifest: no API calls, no clock, no I/O.

Shape of the output
-------------------
* one pod:  an Indexed ``batch/v1`` Job (completions = parallelism = 1);
* more pods: a ``jobset.x-k8s.io/v1alpha2`` JobSet with one replicatedJob ``tp`` whose replicas are the
  tensor-parallel groups; each child Job (one TP group) is Indexed with one pod per node of the group.

Pods per group: a group that fits one node gets one pod requesting ``nvidia.com/gpu: <group>``; a larger
group (GB200 NVL72: tp=72 over 18 nodes of 4 GPUs) gets ``group / gpus_per_node`` pods of
``gpus_per_node`` GPUs each. ``gpus_per_node`` defaults to 4 when the NVLink domain has 72 GPUs (NVL72
racks of 4-GPU compute trays) and to 8 otherwise (HGX boards, where the domain is the node).

Kueue (https://kueue.sigs.k8s.io) admits the whole workload at once (that is the gang), on the queue named
by the ``kueue.x-k8s.io/queue-name`` label. Topology Aware Scheduling annotations on the pod template keep
each TP group inside one NVLink domain, i.e. on nodes that share the value of ``domain_label``:

* the whole gang in one domain (one part):            ``podset-required-topology: <domain_label>``
* several domains, a group spans several pods:        ``podset-slice-required-topology: <domain_label>``
                                                      ``podset-slice-size: <pods per group>``
* several domains, every group is one pod (one node): ``podset-preferred-topology: <domain_label>``

The gang stays in one cluster because the manifest is applied to that cluster's API server only
(``launch.cluster`` is recorded in the ``gpufleet.io/cluster`` label).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from gpufleet.backends.base import BackendError, Launch

GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_IMAGE = "nvcr.io/nvidia/pytorch:24.08-py3"
DEFAULT_DOMAIN_LABEL = "ds.coreweave.com/nvlink.domain"

# Kueue labels (kueue pkg/controller/constants/constants.go)
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY = "kueue.x-k8s.io/priority-class"
# Kueue Topology Aware Scheduling pod-template annotations (kueue apis/kueue/v1alpha1, KEP-2724)
TAS_REQUIRED = "kueue.x-k8s.io/podset-required-topology"
TAS_PREFERRED = "kueue.x-k8s.io/podset-preferred-topology"
TAS_SLICE_REQUIRED = "kueue.x-k8s.io/podset-slice-required-topology"
TAS_SLICE_SIZE = "kueue.x-k8s.io/podset-slice-size"
# JobSet: one child Job per domain of this node label, exclusively (jobset api/jobset/v1alpha2)
JOBSET_EXCLUSIVE = "alpha.jobset.sigs.k8s.io/exclusive-topology"

LABEL_JOB = "gpufleet.io/job"
LABEL_ATTEMPT = "gpufleet.io/attempt"
LABEL_TEAM = "gpufleet.io/team"
LABEL_CLUSTER = "gpufleet.io/cluster"
ANNOTATION_REQUEST = "gpufleet.io/request-id"

REPLICATED_JOB = "tp"
# JobSet pod hostnames are <jobset>-<replicatedJob>-<job index>-<pod index> and must be one DNS label
# (63 characters); 40 leaves room for "-tp-" and two indexes of up to 9 digits each.
MAX_NAME = 40
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def default_gpus_per_node(domain_size: int) -> int:
    """4 for a 72-GPU NVLink domain (GB200 NVL72: 18 trays of 4 GPUs), else 8 (HGX: domain = node)."""
    return 4 if domain_size == 72 else 8


def dns_name(launch: Launch) -> str:
    """``gpufleet-<request>-<job id>-<attempt>``: a DNS-1123 label of at most MAX_NAME characters.

    The request id (the job's name, or name/region/i for a replica) is lower-cased and anything outside
    [a-z0-9-] becomes '-'; when it has to be cut, a short hash of the original keeps names distinct.
    """
    tail = f"-{launch.job_id}-{launch.attempt}"
    slug = _NOT_DNS.sub("-", launch.request_id.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug) or "job"
    room = MAX_NAME - len("gpufleet-") - len(tail)
    if len(slug) > room:
        digest = hashlib.sha1(launch.request_id.encode()).hexdigest()[:6]
        slug = slug[: max(room - 7, 1)].rstrip("-") + "-" + digest
    return f"gpufleet-{slug}{tail}"


def label_value(value: str) -> str:
    """A valid label value: at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    v = _NOT_LABEL.sub("-", value)
    if len(v) > 63:
        v = v[:56] + "-" + hashlib.sha1(value.encode()).hexdigest()[:6]
    return v.strip("-_.")


def pod_layout(launch: Launch, gpus_per_node: int | None = None) -> tuple[int, int, int]:
    """(groups, pods per group, GPUs per pod) for the launch; raises BackendError if it cannot be split."""
    per_node = gpus_per_node or default_gpus_per_node(launch.domain_size)
    group = launch.group or launch.gpus
    if group <= 0 or launch.gpus <= 0 or launch.gpus % group:
        raise BackendError(f"job {launch.job_id}: {launch.gpus} GPUs do not split into groups of {group}")
    if group <= per_node:
        return launch.gpus // group, 1, group
    if group % per_node:
        raise BackendError(f"job {launch.job_id}: a group of {group} GPUs does not fill whole nodes of "
                           f"{per_node}")
    return launch.gpus // group, group // per_node, per_node


def topology_annotations(launch: Launch, pods_per_group: int, domain_label: str) -> dict[str, str]:
    """Kueue TAS annotations that keep every tensor-parallel group within one NVLink domain."""
    if len({d for d, _ in launch.parts}) <= 1:
        return {TAS_REQUIRED: domain_label}
    if pods_per_group > 1:
        return {TAS_SLICE_REQUIRED: domain_label, TAS_SLICE_SIZE: str(pods_per_group)}
    return {TAS_PREFERRED: domain_label}


def _env(launch: Launch, extra: dict[str, str]) -> list[dict[str, str]]:
    env = {k: v for k, v in launch.env.items() if k not in ("GPUFLEET_TOKEN", "GPUFLEET_ADMIN_TOKEN")}
    env.update(launch.variables())
    env.update(extra)
    return [{"name": k, "value": env[k]} for k in sorted(env)]


def render_gang(launch: Launch, *, namespace: str = "default", queue: str = "default",
                domain_label: str = DEFAULT_DOMAIN_LABEL, image: str = DEFAULT_IMAGE,
                priority_class: str | None = None, gpus_per_node: int | None = None,
                exclusive: bool = False) -> dict[str, Any]:
    """The manifest for one placement: an Indexed batch/v1 Job for one pod, else a JobSet.

    `exclusive` adds JobSet's exclusive-topology annotation on `domain_label` (one child Job per NVLink
    domain, nothing else scheduled there); off by default because Kueue TAS already places the groups.
    """
    if not launch.command.strip():
        raise BackendError(f"job {launch.job_id} has no command to run")
    groups, pods_per_group, gpus_per_pod = pod_layout(launch, gpus_per_node)
    name = dns_name(launch)
    labels = {LABEL_JOB: str(launch.job_id), LABEL_ATTEMPT: str(launch.attempt),
              LABEL_TEAM: label_value(launch.team), LABEL_CLUSTER: label_value(launch.cluster)}
    top_labels = {**labels, KUEUE_QUEUE: queue}
    if priority_class:
        top_labels[KUEUE_PRIORITY] = priority_class
    multi = groups * pods_per_group > 1
    extra = {"GPUFLEET_PODS_PER_GROUP": str(pods_per_group)}
    if multi:
        # JobSet gives every pod a stable DNS name <jobset>-<replicatedJob>-<job>-<pod>.<subdomain>
        extra["GPUFLEET_RANK0_HOST"] = f"{name}-{REPLICATED_JOB}-0-0.{name}"
    pod_template = {
        "metadata": {"labels": dict(labels),
                     "annotations": topology_annotations(launch, pods_per_group, domain_label)},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": image,
                "command": ["sh", "-c", launch.command],
                "env": _env(launch, extra),
                "resources": {"limits": {GPU_RESOURCE: str(gpus_per_pod)}},
            }],
        },
    }
    job_spec = {
        "completionMode": "Indexed",
        "completions": pods_per_group,
        "parallelism": pods_per_group,
        "backoffLimit": 0,          # the control loop decides on retries (a new attempt), not Kubernetes
        "template": pod_template,
    }
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": top_labels,
                                "annotations": {ANNOTATION_REQUEST: launch.request_id}}
    if not multi:
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
    if exclusive:
        metadata["annotations"][JOBSET_EXCLUSIVE] = domain_label
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": metadata,
        "spec": {
            "failurePolicy": {"maxRestarts": 0},
            "successPolicy": {"operator": "All"},
            "network": {"enableDNSHostnames": True},
            "replicatedJobs": [{"name": REPLICATED_JOB, "replicas": groups,
                                "template": {"metadata": {"labels": dict(labels)}, "spec": job_spec}}],
        },
    }


def pods_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates of a rendered manifest, one entry per pod that will run."""
    if manifest["kind"] == "Job":
        spec = manifest["spec"]
        return [spec["template"]] * spec["parallelism"]
    out = []
    for rj in manifest["spec"]["replicatedJobs"]:
        spec = rj["template"]["spec"]
        out += [spec["template"]] * (rj["replicas"] * spec["parallelism"])
    return out


def to_yaml(manifest: dict[str, Any]) -> str:
    """Deterministic YAML: keys sorted, block style, multi-line strings as literal blocks (PyYAML, the
    `k8s` extra, is what the Kubernetes client itself uses)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100,
                     allow_unicode=True)
