"""The database schema (SQLAlchemy 2 ORM). Changing it means a new Alembic migration in
``autocontour/store/migrations/versions``; ``tests/store`` fails when the two differ."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The tables of the case store (``Base.metadata`` is what the migrations must build)."""


class User(Base):
    """An account: a unique name and an argon2 hash of the password (never the password)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created: Mapped[datetime] = mapped_column(default=_now)


class Case(Base):
    """One upload of one user: a CT (and what came with it), stored once by its content."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("owner_id", "sha256", name="uq_case_owner_content"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int]
    description: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(default=_now)
    results: Mapped[list[Result]] = relationship(back_populates="case", order_by="Result.id")


class Result(Base):
    """One contouring of a case by one model; results are only ever added."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(default=_now)
    case: Mapped[Case] = relationship(back_populates="results")
