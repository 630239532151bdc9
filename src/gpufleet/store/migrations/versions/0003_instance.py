"""instance: the database's identity, made once when it is created, that keys run and checkpoint directories

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""
import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('instance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(table, [{"id": 1, "identity": uuid.uuid4().hex, "created_at": time.time()}])


def downgrade() -> None:
    op.drop_table('instance')
