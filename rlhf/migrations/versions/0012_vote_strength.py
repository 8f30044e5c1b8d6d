"""vote.strength: how much better the chosen answer is

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites no row, however many votes there are.
    op.add_column('vote', sa.Column('strength', sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('vote') as batch:
        batch.drop_column('strength')
