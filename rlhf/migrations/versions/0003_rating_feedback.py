"""rating feedback: raters' skips

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'skip',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('comparison_id', sa.Integer(), nullable=False),
        sa.Column('rater_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id']),
        sa.ForeignKeyConstraint(['rater_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('skip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_skip_comparison_id'), ['comparison_id'], unique=False)
        batch_op.create_index('ix_skip_rater_recent', ['rater_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('skip', schema=None) as batch_op:
        batch_op.drop_index('ix_skip_rater_recent')
        batch_op.drop_index(batch_op.f('ix_skip_comparison_id'))
    op.drop_table('skip')
