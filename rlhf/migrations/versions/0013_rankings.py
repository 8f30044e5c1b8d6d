"""rankings: K answers ordered in one judgement, stored as their pairs' votes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ranking',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('prompt_id', sa.Integer(), sa.ForeignKey('prompt.id'), nullable=False),
        sa.Column('response_ids', sa.JSON(), nullable=False),
        sa.Column('status', sa.Enum('open', 'closed', 'expired', name='comparisonstatus', native_enum=False,
                                    create_constraint=False, length=32), nullable=False),
        sa.Column('target_votes', sa.Integer(), nullable=False),
        sa.Column('vote_count', sa.Integer(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False, server_default='20'),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('generationjob.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_ranking_prompt_id', 'ranking', ['prompt_id'])
    op.create_index('ix_ranking_status', 'ranking', ['status'])
    op.create_index('ix_ranking_handout', 'ranking', ['status', 'priority', 'id'])
    op.create_table(
        'ranking_lease',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('ranking_id', sa.Integer(), sa.ForeignKey('ranking.id'), nullable=False),
        sa.Column('rater_id', sa.Integer(), sa.ForeignKey('user.id'), nullable=False),
        sa.Column('shown', sa.JSON(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('skipped_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('ranking_id', 'rater_id', name='uq_ranking_lease_rater'),
    )
    op.create_index('ix_ranking_lease_ranking_id', 'ranking_lease', ['ranking_id'])
    op.create_index('ix_ranking_lease_rater_live', 'ranking_lease', ['rater_id', 'expires_at'])
    # Nullable, no default: adding them rewrites no row, however many pairs and votes there are.
    # SQLite takes a reference in ADD COLUMN but no added constraint, so it gets the DDL itself.
    for table in ('comparison', 'vote'):
        if op.get_bind().dialect.name == 'sqlite':
            op.execute(f'ALTER TABLE {table} ADD COLUMN ranking_id INTEGER REFERENCES ranking (id)')
        else:
            op.add_column(table, sa.Column('ranking_id', sa.Integer(), sa.ForeignKey('ranking.id'), nullable=True))
        op.create_index(f'ix_{table}_ranking_id', table, ['ranking_id'])


def downgrade() -> None:
    for table in ('vote', 'comparison'):
        op.drop_index(f'ix_{table}_ranking_id', table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('ranking_id')
    op.drop_table('ranking_lease')
    op.drop_table('ranking')
