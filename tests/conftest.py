import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED = Path(os.environ.get("GPUFLEET_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


# -- databases for the live control plane: SQLite always, PostgreSQL when one is available ---------------
PG_URL_ENV = "GPUFLEET_TEST_PG_URL"


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server URL: $GPUFLEET_TEST_PG_URL (.ci/run starts one), else a throwaway one started
    here with scripts/pg-throwaway when the machine has PostgreSQL's binaries; else the test skips."""
    import shutil
    import subprocess
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    if not (shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))):
        pytest.skip("no PostgreSQL here: set GPUFLEET_TEST_PG_URL or install postgresql")
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="gpufleet-pg-"))  # directly under /tmp: the postgres user must reach it
    os.chmod(d, 0o777)
    script = ROOT / "scripts" / "pg-throwaway"
    r = subprocess.run([str(script), "start", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"could not start PostgreSQL: {r.stderr.strip()[:300]}")
    try:
        yield r.stdout.strip()
    finally:
        subprocess.run([str(script), "stop", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gpufleet.db'}"
    import uuid

    import psycopg
    base = request.getfixturevalue("postgres_url")
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def live(db_url, tmp_path):
    """A live server in the test process on each database: the real app and control loop, a fake backend."""
    from fastapi.testclient import TestClient
    from live_helpers import Live, make_app

    app, backends = make_app(db_url, tmp_path)
    with TestClient(app) as c:
        yield Live(c, backends)
