"""Durable state of the live control plane: SQLAlchemy tables, Alembic migrations, data access."""

from .db import connect, upgrade
from .tables import Base

__all__ = ["Base", "connect", "upgrade"]
