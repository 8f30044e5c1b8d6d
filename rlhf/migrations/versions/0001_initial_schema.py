"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:09:21.032168
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appsetting',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.Enum('policy', 'reward', name='checkpointkind', native_enum=False, length=32), nullable=False),
    sa.Column('status', sa.Enum('available', 'serving', 'retired', name='checkpointstatus', native_enum=False, length=32), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['checkpoint.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkpoint_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkpoint_status'), ['status'], unique=False)

    op.create_table('generationjob',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus', native_enum=False, length=32), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('generationjob', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generationjob_status'), ['status'], unique=False)

    op.create_table('prompt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=256), nullable=True),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id')
    )
    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.Enum('rater', 'engineer', 'admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_role'), ['role'], unique=False)

    op.create_table('response',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('finished', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoint.id'], ),
    sa.ForeignKeyConstraint(['job_id'], ['generationjob.id'], ),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompt.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_response_checkpoint_id'), ['checkpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_response_prompt_id'), ['prompt_id'], unique=False)

    op.create_table('trainingrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.Enum('sft', 'reward', 'dpo', 'ppo', 'rloo', 'grpo', name='algorithm', native_enum=False, length=32), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus', native_enum=False, length=32), nullable=False),
    sa.Column('base_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('reward_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('output_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('snapshot_hash', sa.String(length=64), nullable=True),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('serve_on_success', sa.Boolean(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['base_checkpoint_id'], ['checkpoint.id'], ),
    sa.ForeignKeyConstraint(['created_by'], ['user.id'], ),
    sa.ForeignKeyConstraint(['output_checkpoint_id'], ['checkpoint.id'], ),
    sa.ForeignKeyConstraint(['reward_checkpoint_id'], ['checkpoint.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trainingrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trainingrun_algorithm'), ['algorithm'], unique=False)
        batch_op.create_index(batch_op.f('ix_trainingrun_status'), ['status'], unique=False)

    op.create_table('comparison',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('response_a_id', sa.Integer(), nullable=False),
    sa.Column('response_b_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'closed', name='comparisonstatus', native_enum=False, length=32), nullable=False),
    sa.Column('target_votes', sa.Integer(), nullable=False),
    sa.Column('strategy', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['generationjob.id'], ),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompt.id'], ),
    sa.ForeignKeyConstraint(['response_a_id'], ['response.id'], ),
    sa.ForeignKeyConstraint(['response_b_id'], ['response.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparison_prompt_id'), ['prompt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparison_status'), ['status'], unique=False)

    op.create_table('runlog',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['trainingrun.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runlog', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runlog_run_id'), ['run_id'], unique=False)

    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('swapped', sa.Boolean(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id'], ),
    sa.ForeignKeyConstraint(['rater_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('comparison_id', 'rater_id', name='uq_assignment_rater_comparison')
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignment_comparison_id'), ['comparison_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_rater_id'), ['rater_id'], unique=False)

    op.create_table('vote',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.Enum('a', 'b', 'tie', 'both_bad', name='choice', native_enum=False, length=32), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('shown_swapped', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id'], ),
    sa.ForeignKeyConstraint(['rater_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('comparison_id', 'rater_id', name='uq_vote_rater_comparison'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vote_comparison_id'), ['comparison_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vote_rater_id'), ['rater_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('vote', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vote_rater_id'))
        batch_op.drop_index(batch_op.f('ix_vote_comparison_id'))

    op.drop_table('vote')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignment_rater_id'))
        batch_op.drop_index(batch_op.f('ix_assignment_expires_at'))
        batch_op.drop_index(batch_op.f('ix_assignment_comparison_id'))

    op.drop_table('assignment')
    with op.batch_alter_table('runlog', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runlog_run_id'))

    op.drop_table('runlog')
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparison_status'))
        batch_op.drop_index(batch_op.f('ix_comparison_prompt_id'))

    op.drop_table('comparison')
    with op.batch_alter_table('trainingrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trainingrun_status'))
        batch_op.drop_index(batch_op.f('ix_trainingrun_algorithm'))

    op.drop_table('trainingrun')
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_response_prompt_id'))
        batch_op.drop_index(batch_op.f('ix_response_checkpoint_id'))

    op.drop_table('response')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_role'))

    op.drop_table('user')
    op.drop_table('prompt')
    with op.batch_alter_table('generationjob', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generationjob_status'))

    op.drop_table('generationjob')
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_status'))
        batch_op.drop_index(batch_op.f('ix_checkpoint_run_id'))
        batch_op.drop_index(batch_op.f('ix_checkpoint_kind'))

    op.drop_table('checkpoint')
    op.drop_table('appsetting')
