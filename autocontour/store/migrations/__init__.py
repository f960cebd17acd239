"""Alembic migrations of the case store (run by ``autocontour.store.database.migrate``)."""
