"""ix_score_portfolio covers account scores only

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ['connection_id', 'object', 'external_id', 'relationship', 'experience', 'tier', 'trend', 'at_risk']
ACCOUNTS = sa.text("object = 'account'")


def upgrade() -> None:
    with op.batch_alter_table('score', schema=None) as batch_op:
        batch_op.drop_index('ix_score_portfolio')
        batch_op.create_index('ix_score_portfolio', COLUMNS, unique=False, sqlite_where=ACCOUNTS,
                              postgresql_where=ACCOUNTS)


def downgrade() -> None:
    with op.batch_alter_table('score', schema=None) as batch_op:
        batch_op.drop_index('ix_score_portfolio')
        batch_op.create_index('ix_score_portfolio', COLUMNS, unique=False)
