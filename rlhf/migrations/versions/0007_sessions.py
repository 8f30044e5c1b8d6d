"""sessions: a cookie or token names a row that logout revokes; failed logins kept per name

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cookies and tokens issued before this revision name no session and stop working:
    # everyone logs in once more.
    op.create_table(
        'authsession',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('user_agent', sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,  # a cleared row's id never names a new login
    )
    op.create_index('ix_authsession_user_id', 'authsession', ['user_id'], unique=False)
    op.create_table(
        'loginfailure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_loginfailure_name_at', 'loginfailure', ['name', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_loginfailure_name_at', table_name='loginfailure')
    op.drop_table('loginfailure')
    op.drop_index('ix_authsession_user_id', table_name='authsession')
    op.drop_table('authsession')
