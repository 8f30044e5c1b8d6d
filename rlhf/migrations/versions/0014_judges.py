"""AI judges: the judges, their jobs and their verdicts on each pair

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def _status() -> sa.Enum:
    return sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstatus', native_enum=False,
                   create_constraint=False, length=32)


def upgrade() -> None:
    op.create_table(
        'judge',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(128), nullable=False, unique=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('user.id'), nullable=False),
        sa.Column('url', sa.String(2048), nullable=True),
        sa.Column('model', sa.String(512), nullable=True),
        sa.Column('checkpoint_id', sa.Integer(), sa.ForeignKey('checkpoint.id'), nullable=True),
        sa.Column('api_key_env', sa.String(256), nullable=True),
        sa.Column('template', sa.Text(), nullable=True),
        sa.Column('swap', sa.Boolean(), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('timeout_s', sa.Float(), nullable=False),
        sa.Column('audit_rate', sa.Float(), nullable=False),
        sa.Column('created_by', sa.Integer(), sa.ForeignKey('user.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'judgejob',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('status', _status(), nullable=False),
        sa.Column('judge_id', sa.Integer(), sa.ForeignKey('judge.id'), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Integer(), sa.ForeignKey('user.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_judgejob_status', 'judgejob', ['status'])
    op.create_index('ix_judgejob_judge_id', 'judgejob', ['judge_id'])
    op.create_table(
        'judgeverdict',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('judge_id', sa.Integer(), sa.ForeignKey('judge.id'), nullable=False),
        sa.Column('comparison_id', sa.Integer(), sa.ForeignKey('comparison.id'), nullable=False),
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('judgejob.id'), nullable=True),
        sa.Column('verdict', sa.String(8), nullable=True),
        sa.Column('swapped_verdict', sa.String(8), nullable=True),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('tokens', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('judge_id', 'comparison_id', name='uq_judge_verdict_pair'),
    )
    op.create_index('ix_judgeverdict_judge_id', 'judgeverdict', ['judge_id'])
    op.create_index('ix_judgeverdict_comparison_id', 'judgeverdict', ['comparison_id'])


def downgrade() -> None:
    op.drop_table('judgeverdict')
    op.drop_table('judgejob')
    op.drop_table('judge')
