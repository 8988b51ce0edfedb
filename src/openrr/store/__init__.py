"""Persistence: the Store protocol (``store.base``) and its SQL implementation (``store.sql``: SQLite by
default, PostgreSQL).

Nothing is imported here: the protocol's importers (services, tests) must not load SQLAlchemy, which only
``openrr.store.sql`` needs.
"""
