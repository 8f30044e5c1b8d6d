"""adapters: a checkpoint may be a PEFT adapter over a base checkpoint, named by id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing checkpoint is a full model (LoRA runs used to merge on save): both stay NULL.
    # No foreign key on the base, as for run_id: loading an adapter whose base row is gone says so.
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.add_column(sa.Column('base_checkpoint_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('adapter', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_checkpoint_base_checkpoint_id', ['base_checkpoint_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.drop_index('ix_checkpoint_base_checkpoint_id')
        batch_op.drop_column('adapter')
        batch_op.drop_column('base_checkpoint_id')
