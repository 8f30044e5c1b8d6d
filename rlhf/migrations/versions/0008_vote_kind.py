"""vote kinds and hand-out priority: who cast a vote, as an indexed column; when a pair goes out

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 17:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_KIND = sa.Enum('human', 'simulated', 'machine', 'judge', name='votekind', native_enum=False, length=32)
# As in rlhf.models: uncertain pairs first, regular next, machine-labelled last.
_UNCERTAIN, _REGULAR, _MACHINE_LABELLED = 10, 20, 40


def upgrade() -> None:
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', _KIND, nullable=False, server_default='human'))
    # The kind was spelled in the source until now: "simulated:<rule>", "machine:<reward model id>".
    op.execute("UPDATE vote SET kind = 'simulated' WHERE source LIKE 'simulated:%'")
    op.execute("UPDATE vote SET kind = 'machine' WHERE source LIKE 'machine:%'")
    op.create_index('ix_vote_kind', 'vote', ['kind'], unique=False)

    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default=str(_REGULAR)))
    op.execute(f"UPDATE comparison SET priority = {_UNCERTAIN} WHERE strategy = 'uncertain'")
    op.execute(f"UPDATE comparison SET priority = {_MACHINE_LABELLED} WHERE EXISTS "
               "(SELECT 1 FROM vote WHERE vote.comparison_id = comparison.id AND vote.kind = 'machine')")
    op.drop_index('ix_comparison_open_queue', table_name='comparison')
    op.create_index('ix_comparison_handout', 'comparison', ['status', 'is_gold', 'source', 'priority', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_comparison_handout', table_name='comparison')
    op.create_index('ix_comparison_open_queue', 'comparison', ['status', 'is_gold', 'id'], unique=False)
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.drop_column('priority')
    op.drop_index('ix_vote_kind', table_name='vote')
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.drop_column('kind')
