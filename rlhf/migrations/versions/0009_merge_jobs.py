"""merge jobs: an adapter checkpoint is merged into full weights by a worker, never in a web request

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_STATUS = sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus', native_enum=False,
                  length=32)
_TARGET = sa.Enum('serving', 'checkpoint', name='mergetarget', native_enum=False, length=32)


def upgrade() -> None:
    # Serving LoRA checkpoints whose merged copy is missing get one when they are served again.
    op.create_table(
        'mergejob',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', _STATUS, nullable=False),
        sa.Column('checkpoint_id', sa.Integer(), nullable=False),
        sa.Column('target', _TARGET, nullable=False),
        sa.Column('name', sa.String(length=256), nullable=True),
        sa.Column('output_checkpoint_id', sa.Integer(), nullable=True),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoint.id']),
        sa.ForeignKeyConstraint(['output_checkpoint_id'], ['checkpoint.id']),
        sa.ForeignKeyConstraint(['created_by'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_mergejob_status', 'mergejob', ['status'], unique=False)
    op.create_index('ix_mergejob_checkpoint_id', 'mergejob', ['checkpoint_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_mergejob_checkpoint_id', table_name='mergejob')
    op.drop_index('ix_mergejob_status', table_name='mergejob')
    op.drop_table('mergejob')
