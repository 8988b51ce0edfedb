"""Leader leases, and what admission control counts: sessions.holds_server with its indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Only the columns the backfill reads and writes, as they are at this revision (not the live tables module,
# which later revisions may change).
_sessions = sa.table(
    "sessions",
    sa.column("status", sa.String),
    sa.column("host_released", sa.Boolean),
    sa.column("host_handle", sa.JSON),
    sa.column("holds_server", sa.Boolean),
)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column(
        "sessions", sa.Column("holds_server", sa.Boolean, nullable=False, server_default=sa.false())
    )
    # Existing rows: the same rule as ``openrr.store.rows.holds_server``. A session without a handle was
    # stored with the JSON text 'null' rather than SQL NULL, so both mean "no render server".
    handle = _sessions.c.host_handle
    holding = sa.or_(
        _sessions.c.status.in_(["Starting", "Ready"]),
        sa.and_(
            _sessions.c.host_released == sa.false(),
            handle.is_not(None),
            sa.cast(handle, sa.Text) != "null",
        ),
    )
    op.execute(_sessions.update().values(holds_server=holding))
    op.create_index("ix_sessions_size_holding", "sessions", ["size", "holds_server"])
    op.create_index("ix_sessions_account_holding", "sessions", ["account_id", "holds_server"])


def downgrade() -> None:
    op.drop_index("ix_sessions_account_holding", "sessions")
    op.drop_index("ix_sessions_size_holding", "sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("holds_server")
    op.drop_table("leases")
