"""Open the case store: its home folder, its database (migrated to the current schema), sessions.

The default is embedded and needs nothing installed: ``$AUTOCONTOUR_HOME`` (else
``~/.local/share/autocontour``) holds ``autocontour.db`` (SQLite) and ``files/``. A
``postgresql://`` URL (or any SQLAlchemy URL) puts the database elsewhere; the files stay under
the home folder, which every worker must then share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from autocontour.errors import InvalidInputError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HOME_VARIABLE = "AUTOCONTOUR_HOME"


def default_home() -> Path:
    """``$AUTOCONTOUR_HOME``, else ``~/.local/share/autocontour``."""
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".local" / "share" / "autocontour")


@dataclass(frozen=True)
class Store:
    """An open case store: the home folder, the database engine and a session factory."""

    home: Path
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def files(self) -> Path:
        """Where uploads are kept, one folder per content hash."""
        return self.home / "files"

    def session(self) -> Session:
        return self.sessions()


def open_store(home: str | Path | None = None, url: str | None = None) -> Store:
    """Open (and create or migrate) the store.

    Args:
        home: the home folder (default :func:`default_home`); created when missing.
        url: a SQLAlchemy database URL (default: SQLite in the home folder).

    Raises:
        InvalidInputError: the home folder cannot be created or written, or the database cannot
            be opened or migrated (the message names which and why).
    """
    home = Path(home) if home is not None else default_home()
    try:
        (home / "files").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{home}: cannot create the store's folder ({exc.strerror})") \
            from None
    if not os.access(home, os.W_OK):
        raise InvalidInputError(f"{home}: the store's folder cannot be written")
    engine = create_engine(_driver(url) or f"sqlite:///{home / 'autocontour.db'}",
                           pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_for_many_processes)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise InvalidInputError(f"{url or home / 'autocontour.db'}: cannot open the database "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return Store(home, engine, sessionmaker(engine, expire_on_commit=False))


def _driver(url: str | None) -> str | None:
    """``postgresql://`` means psycopg 3 (what the package installs), not SQLAlchemy's default
    psycopg2."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_for_many_processes(connection, _record) -> None:  # type: ignore[no-untyped-def]
    """The server, its worker threads and worker processes share the file: write-ahead log
    (readers never wait for a writer) and a wait of up to 30 s for another writer's lock."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` of the Alembic migrations (in one transaction)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
