"""The AWS backend: EC2 instance lifecycle against a moto server (start, poll, cancel, unknown ids, an
unreachable endpoint); Capacity Blocks and capacity-reservation launches (which moto does not implement)
through botocore's Stubber; the pure parts (run_instances arguments, user data) without AWS."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
from botocore.stub import ANY, Stubber

from gpufleet.backends.aws import AwsBackend, run_instances_args, user_data
from gpufleet.backends.base import BackendError, BackendUnavailable, Launch, Status

AMI = "ami-12c6146b"


def a_launch(job_id: int = 1, attempt: int = 1, parts=((0, 8),), group: int = 8, **kw) -> Launch:
    base: dict = {"job_id": job_id, "attempt": attempt, "request_id": f"job{job_id}", "name": f"job{job_id}",
                  "team": "research", "command": "python train.py --lr 'x y'", "env": {"MY_SETTING": "on it"},
                  "cluster": "aws-a", "provider": "aws", "gpu_type": "H100", "parts": tuple(parts),
                  "group": group, "domain_size": 8, "checkpoint_dir": "s3://ckpt/1"}
    base.update(kw)
    return Launch(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    mp.undo()


@pytest.fixture
def aws(moto_url):
    b = AwsBackend(ami=AMI, endpoint_url=moto_url)
    yield b
    b.close()


def ec2(url: str):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url)


def state(b: AwsBackend, h: dict) -> Status:
    return b.poll({7: h}).get(7, Status("running"))


# -- pure -----------------------------------------------------------------------------------------------
def test_user_data_exports_and_runs_then_shuts_down():
    ud = user_data(a_launch(job_id=12, attempt=3, parts=((0, 4), (1, 4)), group=4))
    lines = ud.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in ["export GPUFLEET_JOB_ID=12", "export GPUFLEET_ATTEMPT=3", "export GPUFLEET_CLUSTER=aws-a",
                 "export GPUFLEET_PROVIDER=aws", "export GPUFLEET_GPU_TYPE=H100", "export GPUFLEET_GPUS=8",
                 "export GPUFLEET_TP=4", "export GPUFLEET_CHECKPOINT_DIR=s3://ckpt/1",
                 "export MY_SETTING='on it'"]:
        assert want in lines
    assert lines[-2:] == ["bash -c 'python train.py --lr '\"'\"'x y'\"'\"''", "shutdown -h now"]


def test_run_instances_args_counts_and_tags():
    args = run_instances_args(a_launch(job_id=5, attempt=2, parts=((0, 8), (1, 8), (2, 4))), AMI,
                              "p5.48xlarge", 8, subnet_id="subnet-1")
    assert (args["MinCount"], args["MaxCount"]) == (3, 3)
    assert args["ImageId"] == AMI and args["InstanceType"] == "p5.48xlarge" and args["SubnetId"] == "subnet-1"
    tags = {t["Key"]: t["Value"] for t in args["TagSpecifications"][0]["Tags"]}
    assert tags == {"gpufleet:job": "5", "gpufleet:attempt": "2", "gpufleet:team": "research",
                    "gpufleet:cluster": "aws-a", "Name": "gpufleet-5-2"}
    assert "CapacityReservationSpecification" not in args and "InstanceMarketOptions" not in args
    assert args["UserData"] == user_data(a_launch(job_id=5, attempt=2, parts=((0, 8), (1, 8), (2, 4))))


def test_run_instances_args_capacity_block():
    args = run_instances_args(a_launch(parts=((0, 4),)), AMI, "p6e-gb200.36xlarge", 4,
                              capacity_reservation_id="cr-123")
    assert args["MinCount"] == 1
    assert args["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": "cr-123"}}
    assert args["InstanceMarketOptions"] == {"MarketType": "capacity-block"}


def test_no_ami_is_an_error():
    with pytest.raises(BackendError, match="AMI"):
        AwsBackend(client=object()).start(a_launch())


# -- moto -----------------------------------------------------------------------------------------------
def test_start_launches_tagged_instances_and_poll_omits_running(aws, moto_url):
    h = aws.start(a_launch(job_id=21, parts=((0, 8), (1, 8))))
    assert len(h["instances"]) == 2 and h["id"] == h["instances"][0]
    assert h["region"] == "us-east-1" and h["cluster"] == "aws-a"
    resp = ec2(moto_url).describe_instances(InstanceIds=h["instances"])
    insts = [i for r in resp["Reservations"] for i in r["Instances"]]
    assert len(insts) == 2
    for i in insts:
        tags = {t["Key"]: t["Value"] for t in i["Tags"]}
        assert tags["gpufleet:job"] == "21" and tags["gpufleet:attempt"] == "1"
        assert tags["gpufleet:team"] == "research" and tags["Name"] == "gpufleet-21-1"
        assert i["InstanceType"] == "p5.48xlarge"
    assert aws.poll({1: h}) == {}


def test_stopped_is_succeeded(aws, moto_url):
    h = aws.start(a_launch(job_id=22, parts=((0, 8), (1, 8))))
    c = ec2(moto_url)
    c.stop_instances(InstanceIds=h["instances"][:1])
    assert aws.poll({1: h}) == {}     # one instance still running
    c.stop_instances(InstanceIds=h["instances"][1:])
    assert state(aws, h).state == "succeeded"


def test_terminated_by_someone_else_is_lost(aws, moto_url):
    h = aws.start(a_launch(job_id=23))
    ec2(moto_url).terminate_instances(InstanceIds=[h["id"]])
    st = state(aws, h)
    assert st.state == "lost" and "terminated" in st.message


def test_cancel_terminates(aws, moto_url):
    h = aws.start(a_launch(job_id=24))
    aws.cancel(h)
    resp = ec2(moto_url).describe_instances(InstanceIds=[h["id"]])
    assert resp["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    assert state(aws, h) == Status("failed", message="cancelled")
    aws.cancel(h)   # again: no error


def test_unknown_id_is_lost_alongside_known(aws):
    h = aws.start(a_launch(job_id=25))
    ghost = {"id": "i-0123456789abcdef0", "instances": ["i-0123456789abcdef0"], "region": "us-east-1",
             "cluster": "aws-a"}
    out = aws.poll({1: h, 2: ghost})
    assert 1 not in out and out[2].state == "lost"


def test_logs_and_losses(aws):
    h = aws.start(a_launch(job_id=26))
    assert isinstance(aws.logs(h, tail=5), str)
    assert aws.losses() == []


def test_unreachable_endpoint_is_unavailable(moto_url):  # moto_url: for the dummy credentials
    b = AwsBackend(ami=AMI, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailable):
        b.poll({1: {"id": "i-1", "instances": ["i-1"]}})
    with pytest.raises(BackendUnavailable):
        b.start(a_launch())


# -- Stubber: what moto does not implement --------------------------------------------------------------
@pytest.fixture
def stubbed():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def offer(oid: str, fee: str, itype: str = "p5.48xlarge") -> dict:
    t0 = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    return {"CapacityBlockOfferingId": oid, "InstanceType": itype, "AvailabilityZone": "us-east-1a",
            "InstanceCount": 2, "StartDate": t0, "EndDate": t0 + dt.timedelta(hours=24),
            "CapacityBlockDurationHours": 24, "UpfrontFee": fee, "CurrencyCode": "USD"}


def test_find_and_buy_capacity_block(stubbed):
    client, stub = stubbed
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    end = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    stub.add_response("describe_capacity_block_offerings",
                      {"CapacityBlockOfferings": [offer("cb-b", "2000.50"), offer("cb-a", "1500.25")],
                       "NextToken": "n1"},
                      {"InstanceType": "p5.48xlarge", "InstanceCount": 2, "CapacityDurationHours": 24,
                       "StartDateRange": start, "EndDateRange": end})
    stub.add_response("describe_capacity_block_offerings",
                      {"CapacityBlockOfferings": [offer("cb-c", "999.00")]},
                      {"InstanceType": "p5.48xlarge", "InstanceCount": 2, "CapacityDurationHours": 24,
                       "StartDateRange": start, "EndDateRange": end, "NextToken": "n1"})
    t0 = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    stub.add_response("purchase_capacity_block",
                      {"CapacityReservation": {"CapacityReservationId": "cr-9", "InstanceType": "p5.48xlarge",
                                               "TotalInstanceCount": 2, "AvailabilityZone": "us-east-1a",
                                               "StartDate": t0, "EndDate": t0 + dt.timedelta(hours=24),
                                               "State": "scheduled"}},
                      {"CapacityBlockOfferingId": "cb-a", "InstancePlatform": "Linux/UNIX"})
    b = AwsBackend(client=client)
    offers = b.find_capacity_blocks("p5.48xlarge", 2, 24, start=start, end=end)
    assert [o["CapacityBlockOfferingId"] for o in offers] == ["cb-c", "cb-a", "cb-b"]
    cr = b.buy_capacity_block("cb-a")
    assert cr["id"] == "cr-9" and cr["instance_type"] == "p5.48xlarge" and cr["count"] == 2
    assert cr["cost_usd"] == 1500.25 and cr["currency"] == "USD" and cr["start"] == t0


def test_ultraserver_offerings_and_refused_purchase(stubbed):
    client, stub = stubbed
    stub.add_response("describe_capacity_block_offerings",
                      {"CapacityBlockOfferings": [offer("cb-u", "90000", "u-p6e-gb200x72")]},
                      {"InstanceType": "u-p6e-gb200x72", "InstanceCount": 1, "CapacityDurationHours": 24})
    stub.add_client_error("purchase_capacity_block", "InsufficientCapacity", "sold out",
                          expected_params={"CapacityBlockOfferingId": "cb-u", "InstancePlatform": "Linux/UNIX"})
    b = AwsBackend(client=client)
    assert [o["InstanceType"] for o in b.find_capacity_blocks("u-p6e-gb200x72", 1, 24)] == ["u-p6e-gb200x72"]
    with pytest.raises(BackendError, match="InsufficientCapacity: sold out") as e:
        b.buy_capacity_block("cb-u")
    assert not isinstance(e.value, BackendUnavailable)


def test_start_into_capacity_reservation_sends_the_target(stubbed):
    client, stub = stubbed
    launch = a_launch(job_id=31, parts=((0, 8), (1, 8)))
    want = run_instances_args(launch, AMI, "p5.48xlarge", 8, capacity_reservation_id="cr-9")
    assert want["CapacityReservationSpecification"]["CapacityReservationTarget"]["CapacityReservationId"] == "cr-9"
    stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-a"}, {"InstanceId": "i-b"}]},
                      {**want, "UserData": ANY})
    b = AwsBackend(ami=AMI, capacity_reservation_id="cr-9", client=client)
    assert b.start(launch) == {"id": "i-a", "instances": ["i-a", "i-b"], "region": "us-east-1",
                               "cluster": "aws-a"}


def test_losses_reports_events_and_impaired_once(stubbed):
    client, stub = stubbed
    inst = {"InstanceId": "i-a", "Tags": [{"Key": "gpufleet:job", "Value": "1"},
                                         {"Key": "gpufleet:cluster", "Value": "aws-a"}]}
    filters = {"Filters": [{"Name": "tag-key", "Values": ["gpufleet:job"]},
                           {"Name": "instance-state-name", "Values": ["pending", "running"]}]}
    status = {"InstanceStatuses": [
        {"InstanceId": "i-a", "Events": [{"Code": "instance-retirement", "Description": "retiring"}]},
        {"InstanceId": "i-b", "InstanceStatus": {"Status": "impaired"}, "SystemStatus": {"Status": "ok"}}]}
    inst_b = {**inst, "InstanceId": "i-b"}
    for _ in range(2):
        stub.add_response("describe_instances", {"Reservations": [{"Instances": [inst, inst_b]}]}, filters)
        stub.add_response("describe_instance_status", status,
                          {"InstanceIds": ["i-a", "i-b"], "IncludeAllInstances": True})
    b = AwsBackend(client=client)
    losses = b.losses()
    assert [(x.cluster, x.domain) for x in losses] == [("aws-a", None), ("aws-a", None)]
    assert "instance-retirement" in losses[0].reason and "InstanceStatus impaired" in losses[1].reason
    assert b.losses() == []
