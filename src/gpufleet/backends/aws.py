"""The `aws` backend: each placement is a set of EC2 instances started with `run_instances` (boto3).

Conventions (what gpufleet calls things, and what EC2 calls them):

* One `AwsBackend` serves one region. `instance_type` is the EC2 type (default p5.48xlarge, 8 H100s);
  a gang of G GPUs asks for ceil(G / gpus_per_instance) instances (MinCount = MaxCount, all or none).
  UltraServer Capacity Blocks (e.g. `u-p6e-gb200x72`, 72 GB200 GPUs in one NVLink domain over 18
  p6e-gb200.36xlarge instances, 4 GPUs each) need no special code: buy the block with
  `find_capacity_blocks("u-p6e-gb200x72", ...)`/`buy_capacity_block`, then run
  `instance_type="p6e-gb200.36xlarge", gpus_per_instance=4, capacity_reservation_id=<the block>`.
* The instances run a bash user-data script that exports the GPUFLEET_* variables (and the launch's env),
  runs the command, and ends with `shutdown -h now`; the default shutdown behaviour is `stop`.
* `poll`: pending/running/stopping/shutting-down instances are running (left out of the answer). When
  every instance of a placement is `stopped` the work is taken as succeeded (EC2 gives no exit code);
  any instance `terminated` that we did not cancel means the work is lost (spot reclaim, capacity block
  end, someone else's terminate); a placement we cancelled (tagged `gpufleet:cancelled`) ends as failed
  ("cancelled"); instance ids EC2 no longer knows (InvalidInstanceID.NotFound) are lost.
* `losses`: our running instances (tag `gpufleet:job`) with a scheduled event (retirement, reboot, ...) or
  an impaired instance/system status check are reported once each as `Loss(cluster, None, reason)`.
* Capacity Blocks for ML: `find_capacity_blocks` lists offerings sorted by upfront fee;
  `buy_capacity_block` buys one and returns the reservation with its fee as `cost_usd` (the fee comes
  from the offering seen by `find_capacity_blocks`, or from `upfront_fee=`).
* Unreachable endpoints (connect errors and timeouts) raise `BackendUnavailable`; a missing boto3 or a
  refused API call (`ClientError`, with its AWS code and message) raises `BackendError`.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from .base import BackendError, BackendUnavailable, Launch, Loss, Status

INSTALL_HINT = "pip install 'gpufleet[aws]'"
RUNNING_STATES = {"pending", "running", "stopping", "shutting-down"}
CANCEL_TAG = "gpufleet:cancelled"
CHUNK = 1000


def user_data(launch: Launch) -> str:
    """The bash script an instance runs: exports, the command, then power off (which stops the instance)."""
    env = {**launch.variables(), **launch.env}
    lines = ["#!/bin/bash"]
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in env.items()]
    lines += ["bash -c " + shlex.quote(launch.command), "shutdown -h now", ""]
    return "\n".join(lines)


def instance_count(launch: Launch, gpus_per_instance: int) -> int:
    return max(1, math.ceil(max(1, launch.gpus) / max(1, gpus_per_instance)))


def run_instances_args(launch: Launch, ami: str, instance_type: str, gpus_per_instance: int,
                       subnet_id: str | None = None, capacity_reservation_id: str | None = None,
                       capacity_block: bool = True) -> dict[str, Any]:
    """The keyword arguments of `run_instances` for a launch."""
    n = instance_count(launch, gpus_per_instance)
    tags = [{"Key": "gpufleet:job", "Value": str(launch.job_id)},
            {"Key": "gpufleet:attempt", "Value": str(launch.attempt)},
            {"Key": "gpufleet:team", "Value": launch.team},
            {"Key": "gpufleet:cluster", "Value": launch.cluster},
            {"Key": "Name", "Value": f"gpufleet-{launch.job_id}-{launch.attempt}"}]
    args: dict[str, Any] = {
        "ImageId": ami, "InstanceType": instance_type, "MinCount": n, "MaxCount": n,
        "UserData": user_data(launch),
        "InstanceInitiatedShutdownBehavior": "stop",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
    }
    if subnet_id:
        args["SubnetId"] = subnet_id
    if capacity_reservation_id:
        args["CapacityReservationSpecification"] = {
            "CapacityReservationTarget": {"CapacityReservationId": capacity_reservation_id}}
        if capacity_block:
            args["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
    return args


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


class AwsBackend:
    def __init__(self, name: str = "aws", region: str = "us-east-1", instance_type: str = "p5.48xlarge",
                 gpus_per_instance: int = 8, ami: str | None = None, subnet_id: str | None = None,
                 capacity_reservation_id: str | None = None, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.name = name
        self.region = region
        self.instance_type = instance_type
        self.gpus_per_instance = gpus_per_instance
        self.ami = ami
        self.subnet_id = subnet_id
        self.capacity_reservation_id = capacity_reservation_id
        self.endpoint_url = endpoint_url
        self._client = client
        self._buy_client = client  # purchases go through a client that never retries on its own
        self._offers: dict[str, dict[str, Any]] = {}
        self._reported: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------------------

    def _make_client(self, attempts: int) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as e:
            raise BackendError(f"the aws backend needs boto3: {INSTALL_HINT}") from e
        cfg = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        return boto3.client("ec2", region_name=self.region, endpoint_url=self.endpoint_url, config=cfg)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._make_client(2)
        return self._client

    @property
    def buy_client(self) -> Any:
        """For purchases: one attempt only. PurchaseCapacityBlock takes no idempotency token, so a retry
        after a lost answer could buy twice; an unanswered purchase is reported, not repeated."""
        if self._buy_client is None:
            self._buy_client = self._make_client(1)
        return self._buy_client

    def _call(self, op: str, _client: Any = None, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        try:
            return getattr(_client or self.client, op)(**kw)
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as e:
            raise BackendUnavailable(f"EC2 in {self.region} is unreachable: {e}") from e
        except ClientError as e:
            err = e.response.get("Error", {})
            raise BackendError(f"EC2 {op}: {err.get('Code', '?')}: {err.get('Message', e)}") from e
        except BotoCoreError as e:
            raise BackendError(f"EC2 {op}: {e}") from e

    # -- Capacity Blocks for ML ----------------------------------------------------------------------

    def find_capacity_blocks(self, instance_type: str, count: int, duration_hours: int,
                             start: Any = None, end: Any = None) -> list[dict[str, Any]]:
        """Capacity Block offerings (an UltraServer type such as `u-p6e-gb200x72` works too), cheapest
        first."""
        kw: dict[str, Any] = {"InstanceType": instance_type, "InstanceCount": count,
                              "CapacityDurationHours": duration_hours}
        if start is not None:
            kw["StartDateRange"] = start
        if end is not None:
            kw["EndDateRange"] = end
        offers: list[dict[str, Any]] = []
        while True:
            resp = self._call("describe_capacity_block_offerings", **kw)
            offers += resp.get("CapacityBlockOfferings", [])
            if not resp.get("NextToken"):
                break
            kw["NextToken"] = resp["NextToken"]
        offers.sort(key=lambda o: float(o.get("UpfrontFee") or "inf"))
        for o in offers:
            self._offers[o["CapacityBlockOfferingId"]] = o
        return offers

    def offering(self, offering_id: str) -> dict[str, Any] | None:
        """An offering seen by the last `find_capacity_blocks` calls (its price is checked before buying)."""
        return self._offers.get(offering_id)

    def describe_offering(self, offer: dict[str, Any]) -> dict[str, Any]:
        return offering_json(offer)

    def describe_reservation(self, bought: dict[str, Any]) -> dict[str, Any]:
        return jsonable(bought)

    def buy_capacity_block(self, offering_id: str, upfront_fee: float | None = None,
                           tags: dict[str, str] | None = None) -> dict[str, Any]:
        """Buy an offering; returns the capacity reservation with `cost_usd` (the upfront fee). `tags` go on
        the reservation (the server tags it with its charge id, to find it after an unanswered purchase)."""
        kw: dict[str, Any] = {"CapacityBlockOfferingId": offering_id, "InstancePlatform": "Linux/UNIX"}
        if tags:
            kw["TagSpecifications"] = [{"ResourceType": "capacity-reservation",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        resp = self._call("purchase_capacity_block", self.buy_client, **kw)
        cr = resp.get("CapacityReservation") or {}
        offer = self._offers.get(offering_id, {})
        fee = upfront_fee if upfront_fee is not None else offer.get("UpfrontFee")
        return {
            "id": cr.get("CapacityReservationId"),
            "offering_id": offering_id,
            "instance_type": cr.get("InstanceType", offer.get("InstanceType")),
            "count": cr.get("TotalInstanceCount", offer.get("InstanceCount")),
            "availability_zone": cr.get("AvailabilityZone", offer.get("AvailabilityZone")),
            "start": cr.get("StartDate", offer.get("StartDate")),
            "end": cr.get("EndDate", offer.get("EndDate")),
            "state": cr.get("State"),
            "cost_usd": float(fee) if fee is not None else None,
            "currency": offer.get("CurrencyCode", "USD"),
        }

    # -- Backend -------------------------------------------------------------------------------------

    def start(self, launch: Launch) -> dict[str, Any]:
        if not self.ami:
            raise BackendError("the aws backend needs an AMI (ami=...)")
        args = run_instances_args(launch, self.ami, self.instance_type, self.gpus_per_instance,
                                  self.subnet_id, self.capacity_reservation_id)
        resp = self._call("run_instances", **args)
        ids = [i["InstanceId"] for i in resp.get("Instances", [])]
        if not ids:
            raise BackendError("EC2 run_instances started no instance")
        return {"id": ids[0], "instances": ids, "region": self.region, "cluster": launch.cluster}

    def _describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Instance id -> instance for those EC2 knows (unknown ones are left out)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            try:
                page = self._call("describe_instances", InstanceIds=chunk)
            except BackendUnavailable:
                raise
            except BackendError as e:
                if "InvalidInstanceID" not in str(e):
                    raise
                if len(chunk) == 1:
                    continue
                out.update(self._describe_each(chunk))
                continue
            for r in page.get("Reservations", []):
                for inst in r.get("Instances", []):
                    out[inst["InstanceId"]] = inst
        return out

    def _describe_each(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for iid in ids:
            out.update(self._describe([iid]))
        return out

    def poll(self, handles: dict[int, dict[str, Any]]) -> dict[int, Status]:
        all_ids = sorted({i for h in handles.values() for i in h.get("instances") or [h["id"]]})
        known = self._describe(all_ids) if all_ids else {}
        out: dict[int, Status] = {}
        for key, h in handles.items():
            ids = h.get("instances") or [h["id"]]
            insts = [known.get(i) for i in ids]
            if any(x is None for x in insts):
                out[key] = Status("lost", message="EC2 no longer knows some instances")
                continue
            states = [x["State"]["Name"] for x in insts if x is not None]
            cancelled = any(CANCEL_TAG in _tags(x) for x in insts if x is not None)
            if cancelled and all(s not in RUNNING_STATES for s in states):
                out[key] = Status("failed", message="cancelled")
            elif "terminated" in states and not cancelled:
                out[key] = Status("lost", message="an instance was terminated")
            elif any(s in RUNNING_STATES for s in states):
                continue
            elif all(s == "stopped" for s in states):
                out[key] = Status("succeeded", exit_code=0)
            else:
                out[key] = Status("lost", message=f"instance states {sorted(set(states))}")
        return out

    def cancel(self, handle: dict[str, Any]) -> None:
        ids = handle.get("instances") or [handle["id"]]
        try:
            self._call("create_tags", Resources=ids, Tags=[{"Key": CANCEL_TAG, "Value": "1"}])
            self._call("terminate_instances", InstanceIds=ids)
        except BackendUnavailable:
            raise
        except BackendError as e:
            if "InvalidInstanceID" not in str(e):
                raise

    def logs(self, handle: dict[str, Any], tail: int | None = None) -> str:
        resp = self._call("get_console_output", InstanceId=handle["id"], Latest=True)
        text = resp.get("Output") or ""   # botocore already base64-decodes it
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:]) if tail > 0 else ""
        return text

    def losses(self) -> list[Loss]:
        kw: dict[str, Any] = {"Filters": [{"Name": "tag-key", "Values": ["gpufleet:job"]},
                                          {"Name": "instance-state-name", "Values": ["pending", "running"]}]}
        cluster_of: dict[str, str] = {}
        while True:
            resp = self._call("describe_instances", **kw)
            cluster_of.update({inst["InstanceId"]: _tags(inst).get("gpufleet:cluster", "")
                               for r in resp.get("Reservations", []) for inst in r.get("Instances", [])})
            if not resp.get("NextToken"):
                break
            kw["NextToken"] = resp["NextToken"]
        ids = sorted(cluster_of)
        out: list[Loss] = []
        for i in range(0, len(ids), 100):
            st = self._call("describe_instance_status", InstanceIds=ids[i:i + 100], IncludeAllInstances=True)
            for s in st.get("InstanceStatuses", []):
                iid = s["InstanceId"]
                if iid in self._reported:
                    continue
                events = [e.get("Code", "event") for e in s.get("Events", [])
                          if not str(e.get("Description", "")).startswith("[Completed]")]
                impaired = [k for k in ("InstanceStatus", "SystemStatus")
                            if s.get(k, {}).get("Status") == "impaired"]
                if events or impaired:
                    self._reported.add(iid)
                    why = ", ".join([f"scheduled {e}" for e in events] + [f"{k} impaired" for k in impaired])
                    out.append(Loss(cluster_of.get(iid, ""), None, f"{iid}: {why}"))
        return out

    def close(self) -> None:
        return None


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """A reservation or offering with its dates as ISO strings, as the API and the database keep it."""
    return {k: _iso(v) for k, v in d.items()}


def offering_json(o: dict) -> dict:
    """A Capacity Block offering as the API shows it."""
    return {"offering_id": o.get("CapacityBlockOfferingId"), "instance_type": o.get("InstanceType"),
            "count": o.get("InstanceCount"), "availability_zone": o.get("AvailabilityZone"),
            "start": _iso(o.get("StartDate")), "end": _iso(o.get("EndDate")),
            "hours": o.get("CapacityBlockDurationHours"),
            "upfront_fee_usd": float(o["UpfrontFee"]) if o.get("UpfrontFee") is not None else None,
            "currency": o.get("CurrencyCode", "USD")}
