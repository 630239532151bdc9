"""samples, reports, plans.doc: the fleet over time, uploaded simulation results, each plan's document

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('samples',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=True),
    sa.Column('gpus', sa.BigInteger(), nullable=True),
    sa.Column('used', sa.BigInteger(), nullable=True),
    sa.Column('failed', sa.BigInteger(), nullable=True),
    sa.Column('queued', sa.BigInteger(), nullable=True),
    sa.Column('running', sa.BigInteger(), nullable=True),
    sa.Column('usd', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_samples_at', 'samples', ['at'])
    op.create_index('ix_samples_series', 'samples', ['kind', 'name', 'at'])
    op.create_table('reports',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('doc', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_reports_team', 'reports', ['team'])
    with op.batch_alter_table('plans') as b:
        b.add_column(sa.Column('doc', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('plans') as b:
        b.drop_column('doc')
    op.drop_index('ix_reports_team', table_name='reports')
    op.drop_table('reports')
    op.drop_index('ix_samples_series', table_name='samples')
    op.drop_index('ix_samples_at', table_name='samples')
    op.drop_table('samples')
