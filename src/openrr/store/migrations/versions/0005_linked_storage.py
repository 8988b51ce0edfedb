"""Linked storage accounts per account (the service-wide ``--storage-account NAME=KEY`` is gone).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nothing to carry over: the keys of the old service-wide option lived in the service's settings, not
    # here, and ``openrr serve`` now refuses them until they are linked to one account each.
    op.create_table(
        "linked_storage",
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("name", sa.String(24), primary_key=True),
        sa.Column("account_key", sa.Text),
        sa.Column("endpoint", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("linked_storage")
