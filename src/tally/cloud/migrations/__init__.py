"""Alembic migration scripts of the cloud database (run by tally.cloud.storage.migrate)."""
