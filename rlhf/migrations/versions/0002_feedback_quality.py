"""feedback quality: vote counter, gold comparisons, pair-selection margin, excluded raters, live-lease index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_CHOICE = sa.Enum('a', 'b', 'tie', 'both_bad', name='choice', native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vote_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reward_margin', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('is_gold', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('gold_choice', _CHOICE, nullable=True))
        batch_op.create_index('ix_comparison_open_queue', ['status', 'is_gold', 'id'], unique=False)
    # Existing comparisons: count their votes once.
    op.execute("UPDATE comparison SET vote_count = "
               "(SELECT count(*) FROM vote WHERE vote.comparison_id = comparison.id)")
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.alter_column('checkpoint_id', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index('ix_assignment_rater_live', ['rater_id', 'expires_at'], unique=False)
    # Leases of pairs already voted on end now (a vote ends its lease from here on).
    op.execute("UPDATE assignment SET expires_at = created_at WHERE EXISTS (SELECT 1 FROM vote "
               "WHERE vote.comparison_id = assignment.comparison_id AND vote.rater_id = assignment.rater_id)")
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('excluded', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('excluded')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_rater_live')
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.alter_column('checkpoint_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.drop_index('ix_comparison_open_queue')
        batch_op.drop_column('gold_choice')
        batch_op.drop_column('is_gold')
        batch_op.drop_column('reward_margin')
        batch_op.drop_column('vote_count')
