"""The live bill: usage integrated from placements and fees, billed under the contracts by the same
accounting the simulator uses (reserved first, then a spend commitment, then on-demand / list price)."""

from __future__ import annotations

import datetime as dt
from datetime import datetime

import boto3
import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient
from live_helpers import Live, make_app, wait_for

from gpufleet.backends.aws import AwsBackend
from gpufleet.backends.base import BackendUnavailable
from gpufleet.backends.fake import FakeBackend
from gpufleet.files import parse_scenario
from gpufleet.server.spend import Fee, Usage, spend

SCENARIO = """
name: billed
start: 2026-01-01
end: 2030-01-01
providers:
  - {name: aws, kind: aws, regions: [us-east-1]}
  - {name: cw, kind: coreweave, regions: [us-east-04]}
  - {name: odp, kind: custom, regions: [local]}
clusters:
  - {name: aws-h100, provider: aws, region: us-east-1, gpu: H100, domain_size: 8, domains: 10, price_per_gpu_hour: 6.0}
  - {name: cw-h100, provider: cw, region: us-east-04, gpu: H100, domain_size: 8, domains: 10, price_per_gpu_hour: 5.0}
  - {name: od-h100, provider: odp, region: local, gpu: H100, domain_size: 8, domains: 10, price_per_gpu_hour: 4.0}
contracts:
  - {name: aws-commit, kind: spend_commitment, provider: aws, clusters: [aws-h100], start: 2026-01-01,
     end: 2027-01-01, commitment_usd: 876000, price_per_gpu_hour: 3.0}
  - {name: cw-reserved, kind: reserved_capacity, provider: cw, clusters: [cw-h100], start: 2026-01-01,
     end: 2028-01-01, gpus: 8, price_per_gpu_hour: 2.0}
  - {name: od, kind: on_demand, provider: odp, clusters: [od-h100], start: 2026-01-01, end: 2030-01-01,
     discount: 0.25}
"""

T0 = datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
H = 3600.0


@pytest.fixture(scope="module")
def portfolio():
    return parse_scenario(SCENARIO, "billed.yaml")


def test_each_contract_bills_its_usage_its_way(portfolio):
    usage = [Usage("aws-h100", 16, T0, T0 + 10 * H),          # 160 GPU-h at the commitment's $3
             Usage("cw-h100", 4, T0 + 2 * H, T0 + 7 * H),      # 20 GPU-h inside the 8-GPU reservation
             Usage("cw-h100", 16, T0 + 5 * H, None),           # still running: 8 beyond the reservation
             Usage("od-h100", 8, T0 - 5 * H, T0 + 1.5 * H)]    # started before the window: 12 GPU-h counted
    bill = spend(portfolio, usage, [], T0, T0 + 10 * H)
    c = {r["contract"]: r for r in bill["contracts"]}
    assert c["aws-commit"]["usage_usd"] == pytest.approx(160 * 3.0)
    # the reservation is paid in full (8 GPUs x 10 h x $2) whether used or not; overflow goes to list price
    assert c["cw-reserved"]["usage_usd"] == pytest.approx(160.0)
    used_cw = 4 * 5 + 16 * 5            # GPU-hours on cw-h100 in the window
    covered = 4 * 3 + 8 * 2 + 8 * 3     # hours 2-5: 4 of 8 used; hours 5-7: 20 wanted, 8 covered; 7-10: 16 -> 8
    assert c["cw-reserved"]["idle_usd"] == pytest.approx((80 - covered) * 2.0)
    assert bill["list_price_usd"] == pytest.approx((used_cw - covered) * 5.0)
    assert c["od"]["usage_usd"] == pytest.approx(12 * 4.0 * 0.75) == bill["on_demand_usd"]
    gh = {r["cluster"]: r["gpu_hours"] for r in bill["clusters"]}
    assert gh == pytest.approx({"aws-h100": 160, "cw-h100": used_cw, "od-h100": 12})
    prov = {r["provider"]: r["usd"] for r in bill["providers"]}
    assert prov["cw"] == pytest.approx(160.0 + (used_cw - covered) * 5.0)
    assert bill["total_usd"] == pytest.approx(sum(prov.values()))


def test_a_fee_draws_down_the_providers_commitment_and_pace_is_reported(portfolio):
    day = 24 * H
    fees = [Fee(T0 + H, "aws", "aws-h100", "capacity_block", 5000.0, "cr-1"),
            Fee(T0 + 2 * H, "cw", None, "capacity_block", 700.0, "cr-2"),
            Fee(T0 - day, "aws", None, "capacity_block", 1e6, "before the window")]
    bill = spend(portfolio, [Usage("aws-h100", 8, T0, T0 + day)], fees, T0, T0 + day)
    c = {r["contract"]: r for r in bill["contracts"]}
    aws = c["aws-commit"]
    assert aws["fees_usd"] == 5000.0 and aws["usd"] == pytest.approx(5000.0 + 8 * 24 * 3.0)
    # $876,000 over 365 days is $2,400 a day on schedule; this day drew 2.9x that
    assert aws["on_schedule_usd"] == pytest.approx(2400.0) and aws["pace"] == pytest.approx(aws["usd"] / 2400.0)
    assert bill["fees_outside_contracts_usd"] == 700.0  # cw has only a reservation: no commitment to draw
    assert [(f["ref"], f["contract"]) for f in bill["fees"]] == [("cr-1", "aws-commit"), ("cr-2", None)]
    assert bill["fees_usd"] == 5700.0


def test_the_bill_does_not_depend_on_how_the_window_is_cut(portfolio):
    # 16 GPUs for 1 h every 4 h on the 8-GPU reservation's cluster, over 200 days, in one window or twenty
    usage = [Usage("cw-h100", 16, T0 + k * 4 * H, T0 + k * 4 * H + H) for k in range(1200)]
    fees = [Fee(T0 + d * 24 * H, "aws", "aws-h100", "capacity_block", 100.0) for d in range(200)]
    whole = spend(portfolio, usage, fees, T0, T0 + 4800 * H)
    parts = [spend(portfolio, usage, fees, T0 + i * 240 * H, T0 + (i + 1) * 240 * H) for i in range(20)]
    for key in ("total_usd", "list_price_usd", "reserved_idle_usd", "fees_usd"):
        assert sum(p[key] for p in parts) == pytest.approx(whole[key], rel=1e-9), key
    assert whole["fees_usd"] == 200 * 100.0  # a fee on a boundary counts in exactly one window
    # within each hour the reservation covers 8 of the 16 GPUs; the rest is at list price
    assert whole["list_price_usd"] == pytest.approx(1200 * 8 * 5.0)


def test_usage_on_a_cluster_gone_from_the_portfolio_is_reported_unpriced(portfolio):
    bill = spend(portfolio, [Usage("retired-a100", 8, T0, T0 + 2 * H), Usage("od-h100", 1, T0, T0 + H)], [],
                 T0, T0 + 3 * H)
    assert bill["unpriced"] == [{"cluster": "retired-a100", "gpu_hours": 16.0}]
    assert [r["cluster"] for r in bill["clusters"]] == ["od-h100"]


def test_a_fleet_scale_integral_keeps_its_precision(portfolio):
    # 200,000 placements of 288 GPUs in 2026: sums of GPU-seconds near 1e16 if taken on epoch seconds
    usage = [Usage("od-h100", 288, T0 + i, T0 + i + H) for i in range(200_000)]
    bill = spend(portfolio, usage, [], T0, T0 + 80 * H)
    assert bill["clusters"][0]["gpu_hours"] == pytest.approx(200_000 * 288, rel=1e-12)


def test_an_empty_window_costs_nothing_but_reservations(portfolio):
    bill = spend(portfolio, [], [], T0, T0 + 3 * H)
    assert bill["total_usd"] == pytest.approx(8 * 3 * 2.0) == bill["reserved_idle_usd"]
    assert spend(portfolio, [], [], T0, T0)["total_usd"] == 0.0


# -- through the server: usage from real placements, a Capacity Block bought through the aws backend --------

LIVE = """
name: two-clouds
start: 2026-01-01
end: 2030-01-01
providers:
  - {name: aws, kind: aws, regions: [us-east-1]}
  - {name: site, kind: custom, regions: [local]}
clusters:
  - {name: aws-p5, provider: aws, region: us-east-1, gpu: H100, domain_size: 8, domains: 2,
     price_per_gpu_hour: 6.0, backend: aws-east}
  - {name: site-h100, provider: site, region: local, gpu: H100, domain_size: 8, domains: 2,
     price_per_gpu_hour: 2.0, backend: local}
contracts:
  - {name: aws-commit, kind: spend_commitment, provider: aws, clusters: [aws-p5], start: 2026-01-01,
     end: 2030-01-01, commitment_usd: 10000000, price_per_gpu_hour: 3.0}
  - {name: site-od, kind: on_demand, provider: site, clusters: [site-h100], start: 2026-01-01, end: 2030-01-01}
teams:
  - {name: research, quota_gpus: 32}
"""


class PollQuietAws(AwsBackend):
    """The aws backend on a stubbed EC2 client that expects only the Capacity Block calls under test."""

    def losses(self):
        return []


def offer(oid: str, fee: str) -> dict:
    t0 = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    return {"CapacityBlockOfferingId": oid, "InstanceType": "p5.48xlarge", "AvailabilityZone": "us-east-1a",
            "InstanceCount": 2, "StartDate": t0, "EndDate": t0 + dt.timedelta(hours=24),
            "CapacityBlockDurationHours": 24, "UpfrontFee": fee, "CurrencyCode": "USD"}


@pytest.fixture
def two_clouds(db_url, tmp_path):
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    (tmp_path / "two-clouds.yaml").write_text(LIVE)
    with Stubber(client) as stub:
        backends = {"local": FakeBackend("local"), "aws-east": PollQuietAws("aws-east", client=client)}
        app, _ = make_app(db_url, tmp_path, backends, scenario=tmp_path / "two-clouds.yaml")
        with TestClient(app) as c:
            yield Live(c, backends), stub, app
        stub.assert_no_pending_responses()


def test_a_capacity_block_bought_through_the_server_is_billed_to_the_commitment(two_clouds):
    live, stub, app = two_clouds
    c, admin = live.client, live.admin
    stub.add_response("describe_capacity_block_offerings",
                      {"CapacityBlockOfferings": [offer("cb-dear", "90000.00"), offer("cb-cheap", "2400.50")]},
                      {"InstanceType": "p5.48xlarge", "InstanceCount": 2, "CapacityDurationHours": 24})
    r = c.get("/v1/backends/aws-east/capacity-blocks", headers=admin,
              params={"instance_type": "p5.48xlarge", "count": 2, "hours": 24})
    assert r.status_code == 200, r.text
    offers = r.json()["offerings"]
    assert [(o["offering_id"], o["upfront_fee_usd"]) for o in offers] == [("cb-cheap", 2400.5), ("cb-dear", 90000.0)]
    assert offers[0]["start"] == "2026-12-01T11:30:00+00:00" and offers[0]["hours"] == 24

    # refusals buy nothing and record nothing: over the price cap, unknown offering, a backend that cannot
    r = c.post("/v1/backends/aws-east/capacity-blocks", headers=admin, json={"offering_id": "cb-dear", "max_usd": 5000})
    assert r.status_code == 400 and "more than the $5,000.00 allowed" in r.json()["error"]
    assert c.post("/v1/backends/aws-east/capacity-blocks", headers=admin,
                  json={"offering_id": "cb-nope"}).status_code == 404
    r = c.post("/v1/backends/local/capacity-blocks", headers=admin, json={"offering_id": "cb-cheap"})
    assert r.status_code == 400 and "does not sell capacity blocks" in r.json()["error"]
    assert c.get("/v1/spend", headers=admin).json()["fees"] == []

    t0 = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    stub.add_response("purchase_capacity_block",
                      {"CapacityReservation": {"CapacityReservationId": "cr-77", "InstanceType": "p5.48xlarge",
                                               "TotalInstanceCount": 2, "AvailabilityZone": "us-east-1a",
                                               "StartDate": t0, "EndDate": t0 + dt.timedelta(hours=24),
                                               "State": "scheduled"}},
                      {"CapacityBlockOfferingId": "cb-cheap", "InstancePlatform": "Linux/UNIX",
                       "TagSpecifications": [{"ResourceType": "capacity-reservation",
                                              "Tags": [{"Key": "gpufleet:charge", "Value": "1"}]}]})
    r = c.post("/v1/backends/aws-east/capacity-blocks", headers=admin, json={"offering_id": "cb-cheap", "max_usd": 5000})
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["status"], got["cluster"], got["provider"], got["usd"]) == ("done", "aws-p5", "aws", 2400.5)
    assert got["reservation"]["id"] == "cr-77" and got["reservation"]["start"] == "2026-12-01T11:30:00+00:00"
    # the same offering again: refused before any call to AWS (the stub holds no second purchase)
    r = c.post("/v1/backends/aws-east/capacity-blocks", headers=admin, json={"offering_id": "cb-cheap"})
    assert r.status_code == 409 and "already charge 1 (done)" in r.json()["error"]

    bill = c.get("/v1/spend", headers=admin).json()
    (fee,) = bill["fees"]
    assert (fee["ref"], fee["contract"], fee["usd"]) == ("cr-77", "aws-commit", 2400.5)
    assert bill["unsettled"] == []
    aws = next(k for k in bill["contracts"] if k["contract"] == "aws-commit")
    assert aws["fees_usd"] == 2400.5 and aws["usd"] >= 2400.5
    (event,) = [e for e in c.get("/v1/events", headers=admin).json() if e["kind"] == "charge"]
    assert "cr-77" in event["message"] and event["detail"]["usd"] == 2400.5
    # the engine's burn-down of the commitment takes the fee in at its next refresh
    control = app.state.control
    wait_for(lambda: next(k for k in control.engine.state.contracts if k.name == "aws-commit").spent_usd
             >= 2400.5, what="the fee in the commitment's burn-down")


def test_a_refused_purchase_costs_nothing_and_an_unanswered_one_is_flagged(two_clouds):
    live, stub, _ = two_clouds
    c, admin = live.client, live.admin
    stub.add_response("describe_capacity_block_offerings",
                      {"CapacityBlockOfferings": [offer("cb-1", "1000.00"), offer("cb-2", "2000.00")]},
                      {"InstanceType": "p5.48xlarge", "InstanceCount": 2, "CapacityDurationHours": 24})
    assert c.get("/v1/backends/aws-east/capacity-blocks", headers=admin,
                 params={"instance_type": "p5.48xlarge", "count": 2}).status_code == 200
    stub.add_client_error("purchase_capacity_block", "InsufficientCapacity", "sold out")
    r = c.post("/v1/backends/aws-east/capacity-blocks", headers=admin, json={"offering_id": "cb-1"})
    assert r.status_code == 502 and "sold out" in r.json()["error"]
    aws = live.backends["aws-east"]

    def no_answer(*a, **k):
        raise BackendUnavailable("EC2 in us-east-1 is unreachable: read timeout")
    aws.buy_capacity_block = no_answer
    r = c.post("/v1/backends/aws-east/capacity-blocks", headers=admin, json={"offering_id": "cb-2"})
    assert r.status_code == 503 and "may have gone through" in r.json()["error"]
    assert "gpufleet:charge=2" in r.json()["error"]
    bill = c.get("/v1/spend", headers=admin).json()
    assert bill["fees"] == [] and bill["fees_usd"] == 0.0
    assert [(u["charge"], u["status"], u["usd"]) for u in bill["unsettled"]] == [(2, "unknown", 2000.0)]
    kinds = [(e["kind"], e["detail"]["status"]) for e in c.get("/v1/events", headers=admin).json()
             if e["kind"] == "charge_failed"]
    assert kinds == [("charge_failed", "failed"), ("charge_failed", "unknown")]


def test_usage_of_finished_work_is_billed_at_its_clusters_price(two_clouds):
    live, _, _ = two_clouds
    c, admin = live.client, live.admin
    research = live.team("research")
    # an under-used commitment makes aws-p5 the cheapest place; take it out so the work runs on site-h100
    assert c.post("/v1/capacity", headers=admin, json={"scope": "cluster", "target": "aws-p5"}).status_code == 200
    job = live.submit(research, name="eval", gpus="H100:8", command="sleep 0.3")["id"]
    live.wait_state(job, "running")
    live.backends["local"].finish(job)
    done = live.wait_state(job, "succeeded")
    (pl,) = live.job(job)["placements"]
    assert pl["cluster"] == "site-h100"
    hours = (pl["released_at"] - pl["placed_at"]) * 8 / 3600
    bill = c.get("/v1/spend", headers=admin).json()
    site = next(k for k in bill["contracts"] if k["contract"] == "site-od")
    assert site["usage_usd"] == pytest.approx(hours * 2.0, rel=1e-6) and hours > 0
    assert {r["cluster"]: r["gpu_hours"] for r in bill["clusters"]}["site-h100"] == pytest.approx(hours)
    assert done["state"] == "succeeded"
    # a window before the work ran bills none of it; a team token may not read the bill
    early = c.get("/v1/spend", headers=admin, params={"until": dt.datetime.fromtimestamp(
        pl["placed_at"] - 1, dt.UTC).isoformat(), "since": "2026-01-01T00:00:00"}).json()
    assert early["usage_usd"] == 0.0
    assert c.get("/v1/spend", headers=research).status_code == 403
    r = c.get("/v1/spend", headers=admin, params={"since": "2026-02-01", "until": "2026-01-01"})
    assert r.status_code == 422 and "until" in r.json()["error"]
