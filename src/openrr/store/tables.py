"""SQLAlchemy Core tables. Changing them means a new Alembic revision in store/migrations/versions."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("primary_key_hash", sa.String(200), nullable=False),
    sa.Column("secondary_key_hash", sa.String(200), nullable=False),
    # Access tokens issued before this are refused (``openrr accounts rotate-key --revoke-tokens``).
    sa.Column("tokens_not_before", sa.DateTime(timezone=True)),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("private_pem", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("id", sa.String(256), primary_key=True),
    sa.Column("size", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lease_minutes", sa.Integer, nullable=False),
    sa.Column("models", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ready_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("hostname", sa.String(255)),
    sa.Column("handshake_port", sa.Integer),
    sa.Column("inspector_port", sa.Integer),
    sa.Column("teraflops", sa.Float),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("host_handle", sa.JSON),
    sa.Column("host_released", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, nullable=False),
    # Whether the session holds a render server: Starting or Ready, or ended with a server not released yet
    # (see ``openrr.store.rows.holds_server``). Derived from the columns above and written with them, so
    # that admission control counts servers per size and per account through an index instead of
    # evaluating that predicate (and JSON nulls, which differ per dialect) over every session ever kept.
    sa.Column("holds_server", sa.Boolean, nullable=False, server_default=sa.false()),
    # The HMAC key of the session's connect tokens (openrr.services.tokens), given to its render server alone.
    sa.Column("connect_secret", sa.Text),
    sa.Index("ix_sessions_status", "status"),
    sa.Index("ix_sessions_ended_at", "ended_at"),
    sa.Index("ix_sessions_size_holding", "size", "holds_server"),
    sa.Index("ix_sessions_account_holding", "account_id", "holds_server"),
)

conversions = sa.Table(
    "conversions",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("id", sa.String(256), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    # The normalised input and output locations, as the API echoes them (never a SAS).
    sa.Column("settings", sa.JSON, nullable=False),
    # Shared access signatures, kept only until the conversion ends.
    sa.Column("input_sas", sa.Text),
    sa.Column("output_sas", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("output_uri", sa.Text),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Which control-plane process runs it, and when that process last said it still does.
    sa.Column("worker", sa.String(200)),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_conversions_status", "status"),
)

# Named leases that make one control-plane replica at a time do a job (the reaper, say). A holder keeps its
# lease by renewing it before ``expires_at``; a replica that dies simply stops renewing, and another one
# takes the lease over once it has expired.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# ARR's "linked storage accounts": a storage account whose key one account's conversions may use without a
# SAS. Per account, never service-wide: a conversion reaches only the storage linked to its own account.
# The key is kept in clear, like ``signing_keys.private_pem`` beside it: anyone who can read this database
# can already mint tokens for every account, so encrypting with a key from the same database adds nothing.
linked_storage = sa.Table(
    "linked_storage",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("name", sa.String(24), primary_key=True),
    sa.Column("account_key", sa.Text),
    sa.Column("endpoint", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The model library (openrr.services.models): an account's uploads, each converted into the account's own
# model folder. Status and error are copied from the model's conversion once it has ended, because
# conversions are purged after the retention period while a library model stays until it is deleted.
models = sa.Table(
    "models",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("entry", sa.String(1024), nullable=False),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("conversion_id", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.UniqueConstraint("account_id", "name", name="uq_models_account_name"),
)
