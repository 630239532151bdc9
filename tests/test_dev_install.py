"""Development installs run the sources: an editable install is plain Python, and a tree holding compiled
modules older than their sources says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gpufleet._stale import stale_modules, warn_if_stale

ROOT = Path(__file__).resolve().parents[1]


def test_setup_builds_no_compiled_module_for_an_editable_install():
    code = ("import sys, runpy, setuptools; got = {}; setuptools.setup = lambda **kw: got.update(kw); "
            "sys.argv = ['setup.py', 'editable_wheel']; runpy.run_path('setup.py'); "
            "print(len(got['ext_modules']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "GPUFLEET_PURE"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0" and "editable install" in r.stdout


def test_compiled_modules_older_than_their_sources_are_named(tmp_path, capsys):
    pkg = tmp_path / "src" / "gpufleet"
    (pkg / "placement").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    so, src = pkg / "placement" / "engine.cpython-311-x86_64-linux-gnu.so", pkg / "placement" / "engine.py"
    so.write_bytes(b"")
    src.write_text("")
    os.utime(so, (1_000_000, 1_000_000))
    assert stale_modules(pkg) == ["placement/engine.py"]
    warn_if_stale(pkg)
    assert "placement/engine.py" in capsys.readouterr().err
    os.utime(so, None)                     # rebuilt after the edit: nothing to say
    os.utime(src, (1_000_000, 1_000_000))
    assert stale_modules(pkg) == []
