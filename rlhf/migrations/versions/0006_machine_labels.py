"""machine labels: a vote's calibrated probability, and label jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_STATUS = sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus', native_enum=False,
                  length=32)


def upgrade() -> None:
    # People's votes have no stated probability: NULL, as for every existing vote.
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label_p', sa.Float(), nullable=True))
    op.create_table(
        'labeljob',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', _STATUS, nullable=False),
        sa.Column('reward_checkpoint_id', sa.Integer(), nullable=False),
        sa.Column('min_confidence', sa.Float(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.ForeignKeyConstraint(['reward_checkpoint_id'], ['checkpoint.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_labeljob_status', 'labeljob', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_labeljob_status', table_name='labeljob')
    op.drop_table('labeljob')
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.drop_column('label_p')
