"""`gpufleet backends`: which execution backends this installation can use, and why not."""

from __future__ import annotations

import importlib.util

import pytest
from cli_helpers import gpufleet

from gpufleet.backends.base import BackendError
from gpufleet.backends.registry import make_backend


def test_backends_lists_each_with_whether_it_is_usable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm client on this PATH
    r = gpufleet("backends", "--json")
    assert r.code == 0
    rows = {b["name"]: b for b in r.json()}
    assert set(rows) >= {"local", "ray", "slurm", "fake"}
    assert rows["local"]["usable"] is True and rows["local"]["why_not"] is None
    assert rows["slurm"]["usable"] is False and "sbatch" in rows["slurm"]["why_not"]
    assert rows["slurm"]["extra"] == "slurm" and rows["ray"]["extra"] == "ray"
    assert rows["ray"]["usable"] is (importlib.util.find_spec("ray") is not None)
    table = gpufleet("backends")
    assert table.code == 0 and "apt-get install slurm-client" in table.out


def test_an_unusable_or_unknown_backend_is_refused_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="not usable here.*slurm-client"):
        make_backend("slurm", tmp_path)
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        make_backend("nope", tmp_path)


def test_serve_refuses_an_unknown_backend_as_bad_input(tmp_path):
    r = gpufleet("serve", "--backend", "nope", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--data-dir", str(tmp_path))
    assert r.code == 2 and "unknown backend 'nope'" in r.err


def test_a_backends_file_names_backends_of_each_kind(tmp_path):
    from gpufleet.backends.registry import backends_from_file
    f = tmp_path / "backends.yaml"
    f.write_text("sim-a: {kind: fake}\nlocal-b: {kind: local}\n")
    named = backends_from_file(f, tmp_path)
    assert {n: type(b).__name__ for n, b in named.items()} == {"sim-a": "FakeBackend", "local-b": "LocalBackend"}
    assert named["sim-a"].name == "sim-a" and named["local-b"].name == "local-b"
    f.write_text("x: {kind: local, colour: blue}\n")
    with pytest.raises(BackendError, match="backend x \\(local\\)"):
        backends_from_file(f, tmp_path)
    f.write_text("- not a mapping\n")
    with pytest.raises(BackendError, match="expected a mapping"):
        backends_from_file(f, tmp_path)
    r = gpufleet("serve", "--backends", str(f), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--data-dir", str(tmp_path))
    assert r.code == 2 and "expected a mapping" in r.err
