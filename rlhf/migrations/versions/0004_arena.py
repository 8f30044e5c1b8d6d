"""arena: comparison source, arena prompts kept out of the pool, rater-written demonstrations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_SOURCE = sa.Enum('queue', 'arena', 'written', name='comparisonsource', native_enum=False, length=32)


def upgrade() -> None:
    # Every existing comparison came from a generation job (or a gold import): the queue.
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', _SOURCE, nullable=False, server_default='queue'))
        batch_op.create_index('ix_comparison_source', ['source'], unique=False)
    with op.batch_alter_table('prompt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='import'))
        batch_op.add_column(sa.Column('in_pool', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.create_index('ix_prompt_in_pool', ['in_pool'], unique=False)
    op.create_table(
        'demonstration',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rater_id', sa.Integer(), nullable=False),
        sa.Column('comparison_id', sa.Integer(), nullable=True),
        sa.Column('messages', sa.JSON(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id']),
        sa.ForeignKeyConstraint(['rater_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_demonstration_rater_id', 'demonstration', ['rater_id'], unique=False)
    op.create_index('ix_demonstration_comparison_id', 'demonstration', ['comparison_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_demonstration_comparison_id', table_name='demonstration')
    op.drop_index('ix_demonstration_rater_id', table_name='demonstration')
    op.drop_table('demonstration')
    with op.batch_alter_table('prompt', schema=None) as batch_op:
        batch_op.drop_index('ix_prompt_in_pool')
        batch_op.drop_column('in_pool')
        batch_op.drop_column('source')
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.drop_index('ix_comparison_source')
        batch_op.drop_column('source')
