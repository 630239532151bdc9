"""Opening the database and bringing its schema up to date with Alembic."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")


def default_url() -> str:
    from platformdirs import user_data_dir
    path = Path(user_data_dir("gpufleet")) / "gpufleet.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def normalize(url: str) -> str:
    """Accept plain postgresql:// URLs and a bare file path for SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def connect(url: str) -> Engine:
    url = normalize(url)
    if url.startswith("sqlite"):
        # hide_parameters: a failed statement's error must not carry job environments into the logs
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never block the writer; NORMAL is crash-safe in WAL
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return eng
    return create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True, hide_parameters=True)


def alembic_config(url: str):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Create or migrate the schema to the newest revision."""
    from alembic import command
    command.upgrade(alembic_config(url), "head")



def identity(eng: Engine, create: bool = True) -> str | None:
    """This database's identity (made by migration 0003 when the database was created; made here, unless
    `create` is false, for a schema created without migrations)."""
    import time
    import uuid

    from sqlalchemy.orm import Session

    from .tables import Instance
    with Session(eng) as s, s.begin():
        row = s.get(Instance, 1)
        if row is None:
            if not create:
                return None
            row = Instance(id=1, identity=uuid.uuid4().hex, created_at=time.time())
            s.add(row)
        return row.identity
