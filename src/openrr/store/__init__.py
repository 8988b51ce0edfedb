"""Persistence: the Store protocol and its SQL implementation (SQLite by default, PostgreSQL)."""

from openrr.store.base import Account, Store
from openrr.store.sql import SqlStore, open_store

__all__ = ["Account", "SqlStore", "Store", "open_store"]
