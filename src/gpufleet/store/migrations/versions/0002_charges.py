"""charges: fees paid through a backend (Capacity Blocks), billed under the contracts with usage

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('charges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('cluster', sa.String(length=200), nullable=True),
    sa.Column('backend', sa.String(length=50), nullable=True),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('usd', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('offering_id', sa.String(length=200), nullable=True),
    sa.Column('ref', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('offering_id')
    )
    op.create_index(op.f('ix_charges_at'), 'charges', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_charges_at'), table_name='charges')
    op.drop_table('charges')
