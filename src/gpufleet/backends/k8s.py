"""Kubernetes backend: one placement = one JobSet (several pods) or one Indexed Job (one pod).

Manifests come from `k8s_render.render_gang` (Kueue admits the gang, TAS keeps groups in one NVLink
domain); this module only talks to the API server through the official `kubernetes` client.

NOT TRIED AGAINST A LIVE API SERVER. No Kubernetes cluster (nor kind/k3s) can run where this was written,
so every test drives in-memory fakes of CustomObjectsApi / BatchV1Api / CoreV1Api that mimic the client's
call signatures and return shapes as documented. What that means: the request shapes (group/version/
plural, label selectors, propagation policy) and status mapping follow the API docs but have not been
checked end to end; in particular RBAC needs (create/list/delete jobsets and jobs, list pods/nodes, read
pod logs), Kueue actually admitting the workload, and the exact JobSet condition set of the installed
JobSet controller version are unverified. Expect to find bugs on first contact with a real cluster.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Loss, Status
from gpufleet.backends.k8s_render import DEFAULT_DOMAIN_LABEL, DEFAULT_IMAGE, LABEL_JOB, render_gang

log = logging.getLogger("gpufleet.backends")

JOBSET_GROUP = "jobset.x-k8s.io"
JOBSET_VERSION = "v1alpha2"
JOBSET_PLURAL = "jobsets"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
JOB_NAME_LABEL = "job-name"
# render_gang sets no managed-by label; every object it renders carries gpufleet.io/job.
SELECTOR = LABEL_JOB
INSTALL_HINT = "the Kubernetes backend needs the kubernetes client: pip install 'gpufleet[k8s]'"


def _k8s():
    try:
        import kubernetes
        import kubernetes.client
        import kubernetes.config
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BackendError(f"{INSTALL_HINT} ({e})") from e
    return kubernetes


def _get(obj: Any, *path: str) -> Any:
    """Walk dicts (custom objects, camelCase) or client models (snake_case attributes) alike."""
    for key in path:
        if obj is None:
            return None
        if isinstance(obj, dict):
            obj = obj.get(key)
        else:
            snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
            obj = getattr(obj, snake, None)
    return obj


def _items(listing: Any) -> list[Any]:
    return list(_get(listing, "items") or [])


def _true_condition(obj: Any, ctype: str) -> Any:
    for c in _get(obj, "status", "conditions") or []:
        if _get(c, "type") == ctype and str(_get(c, "status")) == "True":
            return c
    return None


def _natural(text: str) -> tuple:
    """rack-2 before rack-10."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)


class KubernetesBackend:
    def __init__(self, name: str = "k8s", cluster: str | None = None, namespace: str = "default",
                 queue: str = "default", domain_label: str = DEFAULT_DOMAIN_LABEL,
                 image: str = DEFAULT_IMAGE, kubeconfig: str | None = None, context: str | None = None,
                 api_client: Any = None, *, priority_class: str | None = None,
                 gpus_per_node: int | None = None, exclusive: bool = False,
                 custom_api: Any = None, batch_api: Any = None, core_api: Any = None,
                 domain_map: dict[str, int] | None = None) -> None:
        self.name = name
        self.cluster = cluster
        self.namespace = namespace
        self.queue = queue
        self.domain_label = domain_label
        self.image = image
        self.priority_class = priority_class
        self.gpus_per_node = gpus_per_node
        self.exclusive = exclusive
        k8s = _k8s()
        self._api_exception = k8s.client.exceptions.ApiException
        if custom_api is None or batch_api is None or core_api is None:
            if api_client is None:
                api_client = self._load_config(k8s, kubeconfig, context)
            custom_api = custom_api or k8s.client.CustomObjectsApi(api_client)
            batch_api = batch_api or k8s.client.BatchV1Api(api_client)
            core_api = core_api or k8s.client.CoreV1Api(api_client)
        self.custom, self.batch, self.core = custom_api, batch_api, core_api
        self._bad_nodes: set[str] = set()     # NotReady or deleted, already reported
        self._known_nodes: dict[str, Any] = {}
        self.domain_map = {str(k): int(v) for k, v in (domain_map or {}).items()}
        self._domain_ids: dict[str, int] = {}  # named domain label values -> index, from the last node listing
        self._warned: set[str] = set()

    @staticmethod
    def _load_config(k8s: Any, kubeconfig: str | None, context: str | None) -> Any:
        try:
            return k8s.config.new_client_from_config(config_file=kubeconfig, context=context,
                                                    persist_config=False)
        except Exception as e:  # noqa: BLE001 - ConfigException, OSError, YAML errors: all mean no config
            kube_err = e
        try:
            cfg = k8s.client.Configuration()
            k8s.config.load_incluster_config(client_configuration=cfg)
            return k8s.client.ApiClient(cfg)
        except Exception as e:
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise BackendUnavailable(
                f"no Kubernetes configuration: kubeconfig {where!r}"
                f"{f' (context {context!r})' if context else ''} could not be loaded: {kube_err}; "
                f"and not running in a cluster: {e}") from e

    # -- error mapping -------------------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        import urllib3

        try:
            return fn(*args, **kw)
        except self._api_exception as e:
            status = e.status or 0
            if status == 0 or status >= 500:
                raise BackendUnavailable(f"Kubernetes API unavailable ({what}): {status} {e.reason}") from e
            raise
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise BackendUnavailable(f"Kubernetes API unreachable ({what}): {e}") from e

    def _cluster(self, handle: dict[str, Any] | None = None) -> str:
        return (handle or {}).get("cluster") or self.cluster or self.name

    # -- Backend -------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> dict[str, Any]:
        manifest = render_gang(launch, namespace=self.namespace, queue=self.queue,
                               domain_label=self.domain_label, image=self.image,
                               priority_class=self.priority_class, gpus_per_node=self.gpus_per_node,
                               exclusive=self.exclusive)
        kind = manifest["kind"]
        name = manifest["metadata"]["name"]
        try:
            if kind == "JobSet":
                self._call("create jobset", self.custom.create_namespaced_custom_object,
                           JOBSET_GROUP, JOBSET_VERSION, self.namespace, JOBSET_PLURAL, manifest)
            else:
                self._call("create job", self.batch.create_namespaced_job, self.namespace, manifest)
        except self._api_exception as e:
            if e.status != 409:   # 409 AlreadyExists: started before a restart; same name, same work
                raise BackendError(f"Kubernetes refused {kind} {name}: {e.status} {e.reason} "
                                   f"{(e.body or '')[:500]}") from e
        return {"id": name, "kind": kind, "namespace": self.namespace,
                "cluster": launch.cluster or self.cluster}

    def _list(self, kind: str, namespace: str) -> dict[str, Any]:
        if kind == "JobSet":
            listing = self._call("list jobsets", self.custom.list_namespaced_custom_object,
                                 JOBSET_GROUP, JOBSET_VERSION, namespace, JOBSET_PLURAL,
                                 label_selector=SELECTOR)
        else:
            listing = self._call("list jobs", self.batch.list_namespaced_job, namespace,
                                 label_selector=SELECTOR)
        return {_get(o, "metadata", "name"): o for o in _items(listing)}

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        listed: dict[tuple[str, str], dict[str, Any]] = {}
        out: dict[int, Status] = {}
        running: dict[int, dict[str, Any]] = {}
        for pid, h in handles.items():
            key = (h.get("kind", "Job"), h.get("namespace") or self.namespace)
            if key not in listed:
                try:
                    listed[key] = self._list(*key)
                except self._api_exception as e:
                    raise BackendError(f"listing {key[0]}s in {key[1]} failed: {e.status} {e.reason}") from e
            obj = listed[key].get(h["id"])
            if obj is None:
                out[pid] = Status("lost", message=f"{key[0]} {h['id']} no longer exists")
                continue
            st = self._status(key[0], obj)
            if st is not None:
                out[pid] = st
            else:
                running[pid] = h
        if running and self._bad_nodes:
            out.update(self._on_bad_nodes(running))
        return out

    def _on_bad_nodes(self, running: dict[int, dict[str, Any]]) -> dict[int, Status]:
        """Running gangs with a pod on a node that `losses()` last saw NotReady: lost (their pods will not
        report back; the control loop requeues them from their checkpoint)."""
        out: dict[int, Status] = {}
        pods_by_ns: dict[str, list[Any]] = {}
        for pid, h in running.items():
            ns = h.get("namespace") or self.namespace
            if ns not in pods_by_ns:
                try:
                    pods_by_ns[ns] = _items(self._call("list pods", self.core.list_namespaced_pod, ns,
                                                       label_selector=SELECTOR))
                except self._api_exception as e:
                    raise BackendError(f"listing pods in {ns} failed: {e.status} {e.reason}") from e
            label = JOBSET_NAME_LABEL if h.get("kind") == "JobSet" else JOB_NAME_LABEL
            for pod in pods_by_ns[ns]:
                node_name = _get(pod, "spec", "nodeName")
                if (_get(pod, "metadata", "labels") or {}).get(label) == h["id"] and node_name in self._bad_nodes:
                    out[pid] = Status("lost", message=f"pod {_get(pod, 'metadata', 'name')} is on node "
                                                      f"{node_name}, which is NotReady")
                    break
        return out

    @staticmethod
    def _status(kind: str, obj: Any) -> Status | None:
        ok = "Completed" if kind == "JobSet" else "Complete"
        if _true_condition(obj, ok) is not None:
            return Status("succeeded", exit_code=0)
        failed = _true_condition(obj, "Failed")
        if failed is not None:
            msg = _get(failed, "message") or _get(failed, "reason") or f"{kind} failed"
            return Status("failed", exit_code=None, message=str(msg))
        if kind == "Job":
            completions = _get(obj, "spec", "completions") or 1
            if (_get(obj, "status", "succeeded") or 0) >= completions:
                return Status("succeeded", exit_code=0)
        return None   # still running (or waiting for admission): left out

    def cancel(self, handle: dict[str, Any]) -> None:
        ns = handle.get("namespace") or self.namespace
        try:
            if handle.get("kind") == "JobSet":
                self._call("delete jobset", self.custom.delete_namespaced_custom_object,
                           JOBSET_GROUP, JOBSET_VERSION, ns, JOBSET_PLURAL, handle["id"],
                           propagation_policy="Foreground")
            else:
                self._call("delete job", self.batch.delete_namespaced_job, handle["id"], ns,
                           propagation_policy="Foreground")
        except self._api_exception as e:
            if e.status != 404:
                raise BackendError(f"deleting {handle['id']} failed: {e.status} {e.reason}") from e

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        ns = handle.get("namespace") or self.namespace
        label = JOBSET_NAME_LABEL if handle.get("kind") == "JobSet" else JOB_NAME_LABEL
        try:
            pods = _items(self._call("list pods", self.core.list_namespaced_pod, ns,
                                     label_selector=f"{label}={handle['id']}"))
            if not pods:
                return ""
            first = min(pods, key=lambda p: _get(p, "metadata", "name") or "")
            kw: dict[str, Any] = {"container": "main"}
            if tail is not None:
                kw["tail_lines"] = tail
            return self._call("read log", self.core.read_namespaced_pod_log,
                              _get(first, "metadata", "name"), ns, **kw) or ""
        except self._api_exception as e:
            raise BackendError(f"logs of {handle['id']} unavailable: {e.status} {e.reason}") from e

    def _label(self, node: Any) -> str | None:
        value = (_get(node, "metadata", "labels") or {}).get(self.domain_label)
        return None if value is None or value == "" else str(value)

    def _domain(self, node: Any) -> int | None:
        """The node's NVLink domain index in the portfolio's cluster: `domain_map[value]` when a map is given,
        else the label's value when it is a number, else the value's position among the named values in
        natural order (rack-2 before rack-10); None for a node outside any NVLink domain."""
        value = self._label(node)
        if value is None:
            return None
        if self.domain_map:
            if value not in self.domain_map:
                self._warn(f"map:{value}", "node %s: domain label %r is not in domain_map; its health is ignored",
                           _get(node, "metadata", "name"), value)
                return None
            return self.domain_map[value]
        if value.lstrip("-").isdigit():
            return int(value)
        return self._domain_ids.get(value)

    def _warn(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def losses(self) -> list[Loss]:
        try:
            nodes = _items(self._call("list nodes", self.core.list_node))
        except self._api_exception as e:
            raise BackendError(f"listing nodes failed: {e.status} {e.reason}") from e
        out: list[Loss] = []
        current: dict[str, Any] = {}
        named = {v for n in [*nodes, *self._known_nodes.values()] if (v := self._label(n)) is not None
                 and not v.lstrip("-").isdigit()}
        self._domain_ids = {v: i for i, v in enumerate(sorted(named, key=_natural))}
        if nodes and not any(self._label(n) is not None for n in nodes):
            self._warn("no-label", "no node carries the domain label %r: no NVLink domain losses can be seen "
                       "(is domain_label right?)", self.domain_label)
        for node in sorted(nodes, key=lambda n: str(_get(n, "metadata", "name"))):
            name = _get(node, "metadata", "name")
            if self._domain(node) is None:
                continue  # not in an NVLink domain gpufleet places on (a CPU or system node)
            current[name] = node
            ready = _true_condition(node, "Ready") is not None
            if ready:
                self._bad_nodes.discard(name)
            elif name not in self._bad_nodes:
                self._bad_nodes.add(name)
                out.append(Loss(self._cluster(), self._domain(node), f"node {name} NotReady"))
        for name, node in self._known_nodes.items():
            if name not in current and name not in self._bad_nodes:
                out.append(Loss(self._cluster(), self._domain(node), f"node {name} deleted"))
        self._bad_nodes &= set(current)   # forget deleted nodes so a re-added one is tracked afresh
        self._known_nodes = current
        return out

    def close(self) -> None:
        return None
