"""Small things a new user meets first: `--version`, singular GPU counts, one token hint."""

from __future__ import annotations

import json

import httpx
import pytest
import typer
from cli_helpers import gpufleet

from gpufleet import __version__
from gpufleet.cli.common import gpus
from gpufleet.cli.client import EXIT_REFUSED, Client


def test_version_prints_the_installed_version():
    r = gpufleet("--version")
    assert r.code == 0 and r.out.strip() == f"gpufleet {__version__}"


def test_gpu_counts_read_as_english():
    assert [gpus(n) for n in (1, 8, 16384)] == ["1 GPU", "8 GPUs", "16,384 GPUs"]
    r = gpufleet("validate", "examples/jobs/batch-eval-1gpu.yaml")
    assert r.code == 0 and "1 GPU of H100" in r.out and "1 GPUs" not in r.out


def _client(message: str, monkeypatch) -> Client:
    monkeypatch.delenv("GPUFLEET_TOKEN", raising=False)
    c = Client("http://gpufleet.test")
    c.http = httpx.Client(base_url=c.base, transport=httpx.MockTransport(
        lambda req: httpx.Response(401, json={"error": message})))
    return c


@pytest.mark.parametrize("message", ["missing bearer token (set GPUFLEET_TOKEN)", "unknown token"])
def test_a_refusal_names_the_token_variable_once(message, monkeypatch, capsys):
    with pytest.raises(typer.Exit) as e:
        _client(message, monkeypatch).call("GET", "/v1/jobs")
    assert e.value.exit_code == EXIT_REFUSED
    said = capsys.readouterr().err
    assert said.count("GPUFLEET_TOKEN") == 1, said


class Flaky:
    """A server that fails `fails` times (a 503, or a dropped connection), then answers."""

    def __init__(self, fails: int, how: str = "503"):
        self.fails, self.how, self.seen = fails, how, []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.seen.append((req.method, req.url.path, req.content))
        if len(self.seen) <= self.fails:
            if self.how == "drop":
                raise httpx.ConnectError("connection refused", request=req)
            return httpx.Response(503, json={"error": "the server could not record this; try again"})
        return httpx.Response(200, json={"id": 1, "created": True})


def _flaky(server: Flaky, monkeypatch) -> Client:
    monkeypatch.setattr("gpufleet.cli.client.RETRY_WAIT_S", 0.0)
    c = Client("http://gpufleet.test")
    c.http = httpx.Client(base_url=c.base, transport=httpx.MockTransport(server))
    return c


@pytest.mark.parametrize("how", ["503", "drop"])
def test_idempotent_calls_are_retried_with_the_same_body(how, monkeypatch):
    server = Flaky(2, how)
    assert _flaky(server, monkeypatch).call("POST", "/v1/jobs", json_body={"key": "k"}, idempotent=True)["id"] == 1
    assert len(server.seen) == 3 and len({body for _, _, body in server.seen}) == 1   # the same key each time


def test_a_call_that_is_not_idempotent_is_tried_once(monkeypatch):
    server = Flaky(1)
    with pytest.raises(typer.Exit) as e:
        _flaky(server, monkeypatch).call("POST", "/v1/tokens", json_body={"team": "t"})
    assert e.value.exit_code == 1 and len(server.seen) == 1


def test_retries_give_up_with_the_servers_answer(monkeypatch, capsys):
    server = Flaky(99)
    with pytest.raises(typer.Exit):
        _flaky(server, monkeypatch).call("GET", "/v1/jobs")
    assert len(server.seen) == 5 and "try again (HTTP 503)" in capsys.readouterr().err


def test_submit_sends_a_generated_key_when_none_is_given(monkeypatch, tmp_path):
    sent = []

    def answer(req: httpx.Request) -> httpx.Response:
        sent.append(json.loads(req.content))
        return httpx.Response(201, json={"id": 3, "created": True})
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(**kw, transport=httpx.MockTransport(answer)))
    r = gpufleet("submit", "examples/jobs/hello-local.yaml", "--json")
    assert r.code == 0, r.err
    assert sent[0]["key"].startswith("cli-") and json.loads(r.out)["key"] == sent[0]["key"]


@pytest.mark.parametrize("status,code", [(409, 1), (422, 2), (502, 1)])
def test_buy_block_exits_as_documented(status, code, monkeypatch):
    monkeypatch.setattr("gpufleet.cli.client.RETRY_WAIT_S", 0.0)
    real = httpx.Client
    answer = httpx.MockTransport(lambda req: httpx.Response(status, json={"error": f"refused ({status})"}))
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(**kw, transport=answer))
    r = gpufleet("capacity", "buy-block", "aws", "cb-123")
    assert r.code == code and f"refused ({status})" in r.err
