"""plans: every plan the server made, with its inputs and the guide the `plan` profile follows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('plans',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('made_at', sa.Float(), nullable=False),
    sa.Column('made_by', sa.String(length=200), nullable=False),
    sa.Column('portfolio_id', sa.BigInteger(), nullable=False),
    sa.Column('horizon_from', sa.String(length=10), nullable=False),
    sa.Column('horizon_to', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=100), nullable=False),
    sa.Column('objective_usd', sa.Float(), nullable=False),
    sa.Column('gap', sa.Float(), nullable=False),
    sa.Column('wall_s', sa.Float(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('guide', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_plans_portfolio_id', 'plans', ['portfolio_id'])


def downgrade() -> None:
    op.drop_index('ix_plans_portfolio_id', table_name='plans')
    op.drop_table('plans')
