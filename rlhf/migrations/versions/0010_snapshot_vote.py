"""snapshot_vote: which votes each run's snapshot holds, as rows beside the run, not a list in its JSON

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:00:00
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BATCH = 5000
_runs = sa.table('trainingrun', sa.column('id', sa.Integer()), sa.column('snapshot', sa.JSON()),
                 sa.column('snapshot_hash', sa.String()))
_held = sa.table('snapshot_vote', sa.column('run_id', sa.Integer()), sa.column('vote_id', sa.Integer()))
_votes = sa.table('vote', sa.column('id', sa.Integer()))


def _as_dict(value):
    return json.loads(value) if isinstance(value, str) else (value or {})


def upgrade() -> None:
    op.create_table(
        'snapshot_vote',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('vote_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['trainingrun.id']),
        sa.ForeignKeyConstraint(['vote_id'], ['vote.id']),
        sa.PrimaryKeyConstraint('run_id', 'vote_id'),
    )
    op.create_index('ix_snapshot_vote_vote_id', 'snapshot_vote', ['vote_id'], unique=False)
    # Existing snapshots keep their list (their JSON is left as it is, so a downgrade loses
    # nothing); the table gets a copy of each, so the lookups work for old runs too.
    conn = op.get_bind()
    existing = {row[0] for row in conn.execute(sa.select(_votes.c.id))}
    runs = conn.execute(sa.select(_runs.c.id, _runs.c.snapshot).where(_runs.c.snapshot_hash.is_not(None))).all()
    for run_id, snapshot in runs:
        ids = sorted({int(v) for v in _as_dict(snapshot).get('vote_ids') or ()} & existing)
        for i in range(0, len(ids), _BATCH):
            conn.execute(_held.insert(), [{'run_id': run_id, 'vote_id': v} for v in ids[i:i + _BATCH]])


def downgrade() -> None:
    # Snapshots taken since store their votes only in the table: give them their list back.
    conn = op.get_bind()
    held: dict[int, list[int]] = {}
    for run_id, vote_id in conn.execute(sa.select(_held.c.run_id, _held.c.vote_id).order_by(_held.c.vote_id)):
        held.setdefault(run_id, []).append(vote_id)
    for run_id, snapshot in conn.execute(sa.select(_runs.c.id, _runs.c.snapshot)).all():
        data = _as_dict(snapshot)
        if run_id in held and 'vote_ids' not in data:
            data = {'vote_ids': held[run_id], **{k: v for k, v in data.items() if k != 'votes'}}
            conn.execute(_runs.update().where(_runs.c.id == run_id).values(snapshot=data))
    op.drop_index('ix_snapshot_vote_vote_id', table_name='snapshot_vote')
    op.drop_table('snapshot_vote')
