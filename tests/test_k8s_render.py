"""Rendering of placements into Kubernetes manifests (Job / JobSet with Kueue TAS annotations).

Golden files live in tests/fixtures/k8s/; regenerate them with GPUFLEET_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from builders import K8S_DOMAIN as DOMAIN
from builders import a_k8s_launch as launch

from gpufleet.backends.base import BackendError, Launch
from gpufleet.backends.k8s_render import (
    GPU_RESOURCE,
    JOBSET_EXCLUSIVE,
    KUEUE_PRIORITY,
    KUEUE_QUEUE,
    TAS_PREFERRED,
    TAS_REQUIRED,
    TAS_SLICE_REQUIRED,
    TAS_SLICE_SIZE,
    dns_name,
    pod_layout,
    pods_of,
    render_gang,
    to_yaml,
)

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
UPDATE = os.environ.get("GPUFLEET_UPDATE_GOLDEN") == "1"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


CASES = {
    "batch-1gpu": launch(job_id=7, request_id="eval-small", name="eval-small", command="python eval.py",
                         env={"HF_HOME": "/cache/hf"}, checkpoint_dir="/ckpt/7"),
    "hgx-8gpu": launch(job_id=8, request_id="finetune", name="finetune", parts=((3, 8),), group=8,
                       command="torchrun --nproc-per-node 8 train.py", checkpoint_dir="/ckpt/8"),
    "nvl72-2x72": launch(job_id=9, attempt=2, request_id="pretrain-405b", name="pretrain-405b",
                         gpu_type="GB200", parts=((0, 72), (1, 72)), group=72, domain_size=72,
                         command="python -m train --tp 72\n  --pp 2", env={"NCCL_DEBUG": "WARN"},
                         checkpoint_dir="/ckpt/9"),
}
RENDER_KW = {"nvl72-2x72": {"queue": "frontier", "priority_class": "high"}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = to_yaml(render_gang(CASES[case], **RENDER_KW.get(case, {})))
    path = FIXTURES / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with GPUFLEET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs: run with GPUFLEET_UPDATE_GOLDEN=1 and review"


def test_render_is_deterministic_and_yaml_round_trips() -> None:
    for lc in CASES.values():
        m = render_gang(lc)
        assert to_yaml(m) == to_yaml(render_gang(lc))
        assert yaml.safe_load(to_yaml(m)) == m


def test_kind_by_pod_count() -> None:
    assert render_gang(CASES["batch-1gpu"])["kind"] == "Job"
    assert render_gang(CASES["hgx-8gpu"])["kind"] == "Job"
    js = render_gang(CASES["nvl72-2x72"])
    assert (js["apiVersion"], js["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    rj = js["spec"]["replicatedJobs"][0]
    assert rj["replicas"] == 2                       # one child Job per TP group / NVLink domain
    assert rj["template"]["spec"]["parallelism"] == 18  # 72 GPUs / 4 per GB200 tray


@pytest.mark.parametrize("lc", [
    *CASES.values(),
    launch(parts=((0, 8), (1, 8)), group=8, domain_size=8),                 # two HGX nodes, tp=8
    launch(parts=((0, 8),), group=2, domain_size=8),                        # four pods of tp=2
    launch(parts=((0, 72), (1, 72), (2, 72)), group=36, domain_size=72),    # 6 groups of 9 pods
    launch(parts=((0, 16),), group=16, domain_size=16, gpu_type="H200"),    # 2 nodes of 8 in one domain
])
def test_gpu_requests_sum_to_gang_size(lc: Launch) -> None:
    m = render_gang(lc)
    pods = pods_of(m)
    assert sum(int(p["spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE]) for p in pods) == lc.gpus
    groups, per_group, per_pod = pod_layout(lc)
    assert groups * per_group == len(pods) and per_group * per_pod == lc.group
    for p in pods:
        env = {e["name"]: e["value"] for e in p["spec"]["containers"][0]["env"]}
        assert env["GPUFLEET_GPUS"] == str(lc.gpus) and env["GPUFLEET_TP"] == str(lc.group)
        assert p["spec"]["containers"][0]["command"] == ["sh", "-c", lc.command]


def test_topology_annotations_keep_groups_in_one_domain() -> None:
    one_domain = pods_of(render_gang(CASES["hgx-8gpu"]))[0]["metadata"]["annotations"]
    assert one_domain == {TAS_REQUIRED: DOMAIN}
    nvl = render_gang(CASES["nvl72-2x72"], domain_label="example.com/nvl")
    ann = pods_of(nvl)[0]["metadata"]["annotations"]
    assert ann == {TAS_SLICE_REQUIRED: "example.com/nvl", TAS_SLICE_SIZE: "18"}
    spread = render_gang(launch(parts=((0, 8), (1, 8)), group=8))
    assert pods_of(spread)[0]["metadata"]["annotations"] == {TAS_PREFERRED: DOMAIN}
    assert JOBSET_EXCLUSIVE not in nvl["metadata"]["annotations"]
    excl = render_gang(CASES["nvl72-2x72"], exclusive=True)
    assert excl["metadata"]["annotations"][JOBSET_EXCLUSIVE] == DOMAIN


def test_kueue_labels() -> None:
    m = render_gang(CASES["batch-1gpu"], queue="team-a")
    assert m["metadata"]["labels"][KUEUE_QUEUE] == "team-a" and KUEUE_PRIORITY not in m["metadata"]["labels"]
    m = render_gang(CASES["batch-1gpu"], priority_class="low")
    assert m["metadata"]["labels"][KUEUE_PRIORITY] == "low"


@pytest.mark.parametrize("request_id", [
    "Train_Llama 3.1/us-east/0", "--weird--", "ÜBER.job", "a" * 200, "UPPER", "/", "x" * 30 + "/eu/12",
])
def test_dns_safe_names(request_id: str) -> None:
    lc = launch(request_id=request_id, name=request_id, team=request_id, job_id=123456, attempt=17,
                parts=((0, 8), (1, 8)), group=8)
    m = render_gang(lc)
    name = m["metadata"]["name"]
    assert DNS_LABEL.match(name) and len(name) <= 40 and name.startswith("gpufleet-")
    assert name.endswith("-123456-17")
    # JobSet pod hostnames <jobset>-tp-<job>-<pod> must stay a DNS label too
    assert len(f"{name}-tp-999999999-999999999") <= 63
    for key, value in {**m["metadata"]["labels"], **pods_of(m)[0]["metadata"]["labels"]}.items():
        assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)
    assert m["metadata"]["annotations"]["gpufleet.io/request-id"] == request_id


def test_names_stay_distinct_after_truncation() -> None:
    a = dns_name(launch(request_id="x" * 60 + "/us/0"))
    b = dns_name(launch(request_id="x" * 60 + "/us/1"))
    assert a != b


def test_secrets_are_not_passed_and_launch_env_is() -> None:
    lc = launch(env={"GPUFLEET_TOKEN": "s3cret", "FOO": "bar"})
    env = {e["name"]: e["value"] for e in pods_of(render_gang(lc))[0]["spec"]["containers"][0]["env"]}
    assert "GPUFLEET_TOKEN" not in env and env["FOO"] == "bar"
    for key in ("GPUFLEET_JOB_ID", "GPUFLEET_ATTEMPT", "GPUFLEET_CLUSTER", "GPUFLEET_PROVIDER",
                "GPUFLEET_GPU_TYPE", "GPUFLEET_GPUS", "GPUFLEET_TP", "GPUFLEET_CHECKPOINT_DIR"):
        assert key in env


@pytest.mark.parametrize("lc", [
    launch(parts=((0, 6),), group=4),                          # 6 GPUs are not groups of 4
    launch(parts=((0, 72),), group=72, domain_size=72, gpu_type="GB200"),
    launch(command="   "),
])
def test_bad_launches_are_refused(lc: Launch) -> None:
    kw = {"gpus_per_node": 5} if lc.group == 72 else {}       # 72 is not whole nodes of 5
    with pytest.raises(BackendError):
        render_gang(lc, **kw)


# -- schema checks -------------------------------------------------------------------------------------

def _strict(schema: dict) -> dict:
    """Reject unknown fields like `kubectl apply --validate=strict` (the API server would prune them)."""
    s = copy.deepcopy(schema)
    if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    for key in ("properties",):
        for k, v in s.get(key, {}).items():
            s[key][k] = _strict(v)
    for key in ("items", "additionalProperties"):
        if isinstance(s.get(key), dict):
            s[key] = _strict(s[key])
    return s


def _check_pod_template(t: dict) -> None:
    """A small structural check of core/v1 PodTemplateSpec (no published schema is bundled for it)."""
    assert set(t) == {"metadata", "spec"}
    assert set(t["metadata"]) <= {"labels", "annotations"}
    for d in t["metadata"].values():
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())
    spec = t["spec"]
    assert spec["restartPolicy"] == "Never"   # required by Indexed Jobs with backoffLimit 0
    for c in spec["containers"]:
        assert DNS_LABEL.match(c["name"]) and c["image"]
        assert all(isinstance(x, str) for x in c["command"])
        assert all(set(e) == {"name", "value"} and isinstance(e["value"], str) for e in c["env"])
        assert set(c["resources"]) <= {"limits", "requests"}
        assert all(isinstance(v, str) for v in c["resources"]["limits"].values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_match_published_schemas(case: str) -> None:
    m = render_gang(CASES[case], **RENDER_KW.get(case, {}))
    assert DNS_LABEL.match(m["metadata"]["name"])
    if m["kind"] == "JobSet":
        jsonschema = pytest.importorskip("jsonschema")
        schema = yaml.safe_load((FIXTURES / "jobset-v1alpha2-schema.trimmed.yaml").read_text())
        jsonschema.validate(m, _strict(schema))
        for rj in m["spec"]["replicatedJobs"]:
            _check_pod_template(rj["template"]["spec"]["template"])
    else:
        assert (m["apiVersion"], m["kind"]) == ("batch/v1", "Job")
        spec = m["spec"]
        assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 1
        _check_pod_template(spec["template"])


def test_strict_schema_catches_a_typo() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _strict(yaml.safe_load((FIXTURES / "jobset-v1alpha2-schema.trimmed.yaml").read_text()))
    m = render_gang(CASES["nvl72-2x72"])
    m["spec"]["replicatedJobs"][0]["replica"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(m, schema)
    m = render_gang(CASES["nvl72-2x72"])
    m["spec"]["successPolicy"]["operator"] = "Most"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(m, schema)
