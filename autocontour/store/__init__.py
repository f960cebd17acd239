"""The case store: accounts, uploads kept by content, and every result ever made, never overwritten.

What the clinical service and its workers share (spec F1, F2, F4): a database (SQLite by default,
PostgreSQL at scale; one schema, migrated with Alembic from its first version) and a storage
folder.

* :mod:`autocontour.store.database`: ``open_store(home, url)`` migrates the database to the
  current schema and returns a :class:`~autocontour.store.database.Store` (engine, sessions,
  storage folder).
* :mod:`autocontour.store.accounts`: users with argon2-hashed passwords.
* :mod:`autocontour.store.cases`: uploads identified by their SHA-256 (the same content uploaded
  again by the same user is the same case), validated with the readers ``predict`` uses before
  anything is recorded, and results tied to the upload and to the model (name, version, file
  hash) that made them: a new result is added beside the old ones, never over them.

Every query that returns a case or a result takes the owner: another user's case is "not found",
never its content.
"""
