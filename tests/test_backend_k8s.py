"""KubernetesBackend against in-memory fakes of CustomObjectsApi / BatchV1Api / CoreV1Api.

No API server runs here: the fakes record calls and hold objects the way the client returns them
(dicts for custom objects, V1 models for Jobs, pods and nodes).
"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("kubernetes")

import urllib3
from builders import K8S_DOMAIN as DOMAIN
from builders import a_k8s_launch as launch
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Loss
from gpufleet.backends.k8s import KubernetesBackend
from gpufleet.backends.k8s_render import render_gang

NS = "train"


def gang() -> Launch:   # 16 GPUs in groups of 8 -> 2 pods -> a JobSet
    return launch(job_id=9, request_id="pretrain", parts=((0, 8), (1, 8)), group=8)


class FakeCustom:
    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.calls: list[tuple] = []
        self.fail: Exception | None = None

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", group, version, namespace, plural, body))
        key = (group, version, namespace, plural, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = copy.deepcopy(body)
        return body

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector=None):
        self.calls.append(("list", group, version, namespace, plural, label_selector))
        if self.fail:
            raise self.fail
        items = [o for k, o in self.objects.items() if k[:4] == (group, version, namespace, plural)
                 and label_selector in o["metadata"]["labels"]]
        return {"apiVersion": f"{group}/{version}", "items": items}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.calls.append(("delete", group, version, namespace, plural, name, kw))
        if self.objects.pop((group, version, namespace, plural, name), None) is None:
            raise ApiException(status=404, reason="NotFound")

    def set_conditions(self, name, conditions):
        for k, o in self.objects.items():
            if k[4] == name:
                o["status"] = {"conditions": conditions}


class FakeBatch:
    def __init__(self):
        self.jobs: dict[tuple[str, str], client.V1Job] = {}
        self.calls: list[tuple] = []

    def create_namespaced_job(self, namespace, body):
        self.calls.append(("create", namespace, body))
        if (namespace, body["metadata"]["name"]) in self.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        md = body["metadata"]
        self.jobs[(namespace, md["name"])] = client.V1Job(
            metadata=client.V1ObjectMeta(name=md["name"], namespace=namespace, labels=md["labels"]),
            spec=client.V1JobSpec(completions=body["spec"]["completions"], template=client.V1PodTemplateSpec()),
            status=client.V1JobStatus(active=1))
        return body

    def list_namespaced_job(self, namespace, label_selector=None):
        self.calls.append(("list", namespace, label_selector))
        return client.V1JobList(items=[j for (ns, _), j in self.jobs.items()
                                       if ns == namespace and label_selector in j.metadata.labels])

    def delete_namespaced_job(self, name, namespace, **kw):
        self.calls.append(("delete", name, namespace, kw))
        if self.jobs.pop((namespace, name), None) is None:
            raise ApiException(status=404, reason="NotFound")


def node(name, ready=True, domain="3"):
    labels = {DOMAIN: domain} if domain is not None else {}
    return client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels),
                         status=client.V1NodeStatus(conditions=[
                             client.V1NodeCondition(type="Ready", status="True" if ready else "False")]))


class FakeCore:
    def __init__(self):
        self.pods: list[client.V1Pod] = []
        self.nodes: list[client.V1Node] = []
        self.logs: dict[str, str] = {}
        self.calls: list[tuple] = []
        self.fail: Exception | None = None

    def list_namespaced_pod(self, namespace, label_selector=None):
        self.calls.append(("pods", namespace, label_selector))
        key, _, value = label_selector.partition("=")
        return client.V1PodList(items=[p for p in self.pods if p.metadata.namespace == namespace
                                       and key in p.metadata.labels
                                       and (not value or p.metadata.labels[key] == value)])

    def read_namespaced_pod_log(self, name, namespace, **kw):
        self.calls.append(("log", name, namespace, kw))
        lines = self.logs[name].splitlines()
        tail = kw.get("tail_lines")
        return "\n".join(lines[-tail:] if tail else lines)

    def list_node(self, **kw):
        if self.fail:
            raise self.fail
        return client.V1NodeList(items=list(self.nodes))


@pytest.fixture
def k8s():
    custom, batch, core = FakeCustom(), FakeBatch(), FakeCore()
    b = KubernetesBackend(cluster="cw-us-east", namespace=NS, queue="q1", custom_api=custom,
                          batch_api=batch, core_api=core)
    return b, custom, batch, core


def test_start_jobset_creates_exactly_the_rendered_manifest(k8s):
    b, custom, batch, _ = k8s
    h = b.start(gang())
    expected = render_gang(gang(), namespace=NS, queue="q1", domain_label=DOMAIN)
    assert expected["kind"] == "JobSet"
    assert custom.calls == [("create", "jobset.x-k8s.io", "v1alpha2", NS, "jobsets", expected)]
    assert batch.calls == []
    assert h == {"id": expected["metadata"]["name"], "kind": "JobSet", "namespace": NS, "cluster": "cw-us-east"}


def test_start_single_pod_creates_job(k8s):
    b, custom, batch, _ = k8s
    h = b.start(launch())
    expected = render_gang(launch(), namespace=NS, queue="q1", domain_label=DOMAIN)
    assert batch.calls == [("create", NS, expected)] and custom.calls == []
    assert h["kind"] == "Job" and h["id"] == expected["metadata"]["name"]


def test_start_again_after_restart_is_idempotent(k8s):
    b, custom, _, _ = k8s
    h1 = b.start(gang())
    h2 = b.start(gang())          # 409 AlreadyExists from the fake
    assert h1 == h2 and len(custom.objects) == 1


def test_start_refused_is_backend_error(k8s):
    b, custom, _, _ = k8s

    def refuse(*a, **kw):
        raise ApiException(status=422, reason="Invalid")
    custom.create_namespaced_custom_object = refuse
    with pytest.raises(BackendError) as e:
        b.start(gang())
    assert not isinstance(e.value, BackendUnavailable)


def test_poll_maps_jobset_conditions_and_missing(k8s):
    b, custom, _, _ = k8s
    running = b.start(gang())
    done = b.start(launch(job_id=10, request_id="a", parts=((0, 8), (1, 8)), group=8))
    bad = b.start(launch(job_id=11, request_id="b", parts=((0, 8), (1, 8)), group=8))
    gone = b.start(launch(job_id=12, request_id="c", parts=((0, 8), (1, 8)), group=8))
    custom.set_conditions(running["id"], [{"type": "Suspended", "status": "False"}])
    custom.set_conditions(done["id"], [{"type": "Completed", "status": "True"}])
    custom.set_conditions(bad["id"], [{"type": "Completed", "status": "False"},
                                      {"type": "Failed", "status": "True", "reason": "FailedJobs",
                                       "message": "jobset failed due to job tp-0 failing"}])
    del custom.objects[next(k for k in custom.objects if k[4] == gone["id"])]
    custom.calls.clear()
    st = b.poll({1: running, 2: done, 3: bad, 4: gone})
    assert set(st) == {2, 3, 4}
    assert st[2].state == "succeeded"
    assert st[3].state == "failed" and st[3].exit_code is None
    assert st[3].message == "jobset failed due to job tp-0 failing"
    assert st[4].state == "lost"
    lists = [c for c in custom.calls if c[0] == "list"]
    assert lists == [("list", "jobset.x-k8s.io", "v1alpha2", NS, "jobsets", "gpufleet.io/job")]


def test_poll_maps_job_status(k8s):
    b, _, batch, _ = k8s
    h_run, h_ok, h_bad = (b.start(launch(job_id=i, request_id=f"j{i}")) for i in (1, 2, 3))
    batch.jobs[(NS, h_ok["id"])].status = client.V1JobStatus(succeeded=1)
    batch.jobs[(NS, h_bad["id"])].status = client.V1JobStatus(failed=1, conditions=[
        client.V1JobCondition(type="Failed", status="True", reason="BackoffLimitExceeded",
                              message="Job has reached the specified backoff limit")])
    st = b.poll({1: h_run, 2: h_ok, 3: h_bad})
    assert set(st) == {2, 3}
    assert st[2].state == "succeeded"
    assert st[3].state == "failed" and st[3].message == "Job has reached the specified backoff limit"
    assert sum(c[0] == "list" for c in batch.calls) == 1


@pytest.mark.parametrize("error", [
    ApiException(status=503, reason="Service Unavailable"),
    ApiException(status=0, reason="connection refused"),
    urllib3.exceptions.MaxRetryError(None, "https://k8s:6443/apis", reason=ConnectionRefusedError()),
])
def test_poll_api_down_is_unavailable(k8s, error):
    b, custom, _, core = k8s
    h = b.start(gang())
    custom.fail = error
    with pytest.raises(BackendUnavailable):
        b.poll({1: h})
    core.fail = error
    with pytest.raises(BackendUnavailable):
        b.losses()


def test_cancel_deletes_foreground_and_ignores_404(k8s):
    b, custom, batch, _ = k8s
    h = b.start(gang())
    j = b.start(launch())
    b.cancel(h)
    b.cancel(j)
    assert ("delete", "jobset.x-k8s.io", "v1alpha2", NS, "jobsets", h["id"],
            {"propagation_policy": "Foreground"}) in custom.calls
    assert ("delete", j["id"], NS, {"propagation_policy": "Foreground"}) in batch.calls
    assert not custom.objects and not batch.jobs
    b.cancel(h)    # already gone: no error
    b.cancel(j)


def test_logs_of_first_pod_with_tail(k8s):
    b, _, _, core = k8s
    h = b.start(gang())
    for i in (1, 0):
        pname = f"{h['id']}-tp-{i}-0-abcde"
        core.pods.append(client.V1Pod(metadata=client.V1ObjectMeta(
            name=pname, namespace=NS, labels={"jobset.sigs.k8s.io/jobset-name": h["id"]})))
        core.logs[pname] = "\n".join(f"pod{i} line{n}" for n in range(5))
    assert b.logs(h, tail=2) == "pod0 line3\npod0 line4"
    assert ("pods", NS, f"jobset.sigs.k8s.io/jobset-name={h['id']}") in core.calls
    assert core.calls[-1] == ("log", f"{h['id']}-tp-0-0-abcde", NS, {"container": "main", "tail_lines": 2})
    j = b.start(launch())
    assert b.logs(j) == ""     # no pod yet


def test_node_notready_reported_once(k8s):
    b, _, _, core = k8s
    core.nodes = [node("n1", domain="3"), node("n2", domain="abc")]
    assert b.losses() == []
    core.nodes = [node("n1", ready=False, domain="3"), node("n2", domain="abc")]
    assert b.losses() == [Loss("cw-us-east", 3, "node n1 NotReady")]
    assert b.losses() == []
    core.nodes = [node("n1", domain="3")]           # n1 recovers, n2 is deleted
    assert b.losses() == [Loss("cw-us-east", 0, "node n2 deleted")]  # a named domain: its stable index
    core.nodes = [node("n1", ready=False, domain="3")]
    assert b.losses() == [Loss("cw-us-east", 3, "node n1 NotReady")]


def test_named_domains_are_numbered_in_natural_order_and_unlabeled_nodes_are_not_domains(k8s, caplog):
    b, _, _, core = k8s
    core.nodes = [node("a1", domain="rack-10"), node("a2", domain="rack-2"), node("cpu", ready=False, domain="")]
    assert b.losses() == []  # the NotReady CPU node holds no NVLink domain: it takes nothing down
    core.nodes = [node("a1", ready=False, domain="rack-10"), node("a2", ready=False, domain="rack-2")]
    # the same numbering after any restart with the same racks: rack-2 is 0, rack-10 is 1
    assert b.losses() == [Loss("cw-us-east", 1, "node a1 NotReady"), Loss("cw-us-east", 0, "node a2 NotReady")]
    core.nodes = [node("x", domain=None), node("y", domain=None)]
    b.losses()
    b.losses()
    assert caplog.text.count("no node carries the domain label") == 1  # a wrong domain_label is said once


def test_an_explicit_domain_map_names_each_rack(k8s, caplog):
    b, _, _, core = k8s
    b.domain_map = {"rack-a": 7, "rack-b": 3}
    core.nodes = [node("a1", domain="rack-a"), node("b1", domain="rack-b"), node("z1", domain="rack-z")]
    assert b.losses() == []
    core.nodes = [node("a1", ready=False, domain="rack-a"), node("b1", domain="rack-b"),
                  node("z1", ready=False, domain="rack-z")]
    assert b.losses() == [Loss("cw-us-east", 7, "node a1 NotReady")]  # rack-z is not in the map: ignored
    assert "'rack-z' is not in domain_map" in caplog.text


def test_missing_kubeconfig_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nope" / "kubeconfig"
    with pytest.raises(BackendUnavailable) as e:
        KubernetesBackend(kubeconfig=str(missing))
    assert "no Kubernetes configuration" in str(e.value) and str(missing) in str(e.value)


def test_kubeconfig_builds_real_clients_without_network(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c1, cluster: {server: "https://k8s.example:6443"}}]
users: [{name: u1, user: {token: abc}}]
contexts: [{name: ctx1, context: {cluster: c1, user: u1, namespace: ml}}]
current-context: ctx1
""")
    b = KubernetesBackend(kubeconfig=str(cfg), context="ctx1")
    assert isinstance(b.custom, client.CustomObjectsApi) and isinstance(b.core, client.CoreV1Api)
    assert b.batch.api_client.configuration.host == "https://k8s.example:6443"
    with pytest.raises(BackendUnavailable):
        KubernetesBackend(kubeconfig=str(cfg), context="no-such-context")


def test_running_gang_on_notready_node_is_lost(k8s):
    b, _, _, core = k8s
    h = b.start(gang())
    other = b.start(launch(job_id=10, request_id="other", parts=((0, 8), (1, 8)), group=8))
    for owner, node_name in ((h["id"], "n1"), (other["id"], "n2")):
        core.pods.append(client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"{owner}-tp-0-0", namespace=NS, labels={
                "gpufleet.io/job": "x", "jobset.sigs.k8s.io/jobset-name": owner}),
            spec=client.V1PodSpec(node_name=node_name, containers=[])))
    core.nodes = [node("n1"), node("n2")]
    b.losses()
    assert b.poll({1: h, 2: other}) == {}
    core.nodes = [node("n1", ready=False), node("n2")]
    assert len(b.losses()) == 1
    st = b.poll({1: h, 2: other})
    assert set(st) == {1} and st[1].state == "lost" and "n1" in st[1].message
