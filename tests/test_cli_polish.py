"""Small things a new user meets first: `--version`, singular GPU counts, one token hint."""

from __future__ import annotations

import httpx
import pytest
import typer
from cli_helpers import gpufleet

from gpufleet import __version__
from gpufleet.cli.common import gpus
from gpufleet.cli.live import EXIT_REFUSED, Client


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
