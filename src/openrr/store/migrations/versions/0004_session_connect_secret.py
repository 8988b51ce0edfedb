"""sessions.connect_secret: the key of the session's connect tokens, shared with its render server only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions started before this revision have none: their render servers took account tokens, and a
    # connect token cannot be made for them (the API says so; a new session gets one).
    op.add_column("sessions", sa.Column("connect_secret", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("connect_secret")
