"""The database schema (SQLAlchemy 2 ORM). Changing it means a new Alembic migration in
``autocontour/store/migrations/versions``; ``tests/store`` fails when the two differ."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def now() -> datetime:
    """The time now in UTC, without a zone (as both SQLite and PostgreSQL give it back)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The tables of the case store (``Base.metadata`` is what the migrations must build)."""


class User(Base):
    """An account: a unique name and an argon2 hash of the password (never the password)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created: Mapped[datetime] = mapped_column(default=now)


class Case(Base):
    """One upload of one user: a CT (and what came with it), stored once by its content."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("owner_id", "sha256", name="uq_case_owner_content"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # uploads of 2 GiB and more
    description: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(default=now)
    reference_filename: Mapped[str | None] = mapped_column(String(255))
    reference_sha256: Mapped[str | None] = mapped_column(String(64))
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
    created: Mapped[datetime] = mapped_column(default=now)
    case: Mapped[Case] = relationship(back_populates="results")


class LoginSession(Base):
    """A browser's login: the SHA-256 of its cookie (never the cookie) and its CSRF token."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(default=now)
    expires: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for scripts: its SHA-256 (the token itself is shown once), a name."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(default=now)
    last_used: Mapped[datetime | None]


class Job(Base):
    """One request to contour a case, from queued to done (or failed, or cancelled).

    The database is the truth about a job; the queue only says "look at job N". ``attempt``
    counts the times a worker took it: a worker records its result only while the job is still
    its attempt, so a job re-run after its worker died keeps exactly one result.
    """

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    model: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    fraction: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str] = mapped_column(String(128), default="")
    heartbeat: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"))
    created: Mapped[datetime] = mapped_column(default=now)
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]


class Review(Base):
    """A clinician's review of a result: per organ accepted or needing edit, with comments.
    Each save is a new version beside the earlier ones; the result itself is never touched."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("result_id", "version", name="uq_review_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    version: Mapped[int]
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    organs: Mapped[str] = mapped_column(Text, default="{}")
    comment: Mapped[str] = mapped_column(Text, default="")
    saved: Mapped[datetime] = mapped_column(default=now)


class DicomSeries(Base):
    """One reception of a DICOM series by the DICOM node (``autocontour dicom-node``): from the
    first instance received to the case and job made of it, or the reason it was refused.

    The same series sent again is a new reception (a new row); it makes the same case (the
    store keeps uploads by content).
    """

    __tablename__ = "dicom_series"
    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    peer: Mapped[str] = mapped_column(String(128), default="")
    instances: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    rule: Mapped[str] = mapped_column(String(255), default="")
    model: Mapped[str | None] = mapped_column(String(255))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    received: Mapped[datetime] = mapped_column(default=now)
    last_received: Mapped[datetime] = mapped_column(default=now)
    completed: Mapped[datetime | None]


class DicomSend(Base):
    """One destination of the contours of a received series: C-STOREd with retries, its state
    (waiting for the job, pending, retrying, sent, failed, skipped) and the reason."""

    __tablename__ = "dicom_sends"
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("dicom_series.id"), index=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    tls: Mapped[bool] = mapped_column(default=False)
    send_seg: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"))
    next_attempt: Mapped[datetime | None]
    created: Mapped[datetime] = mapped_column(default=now)
    sent: Mapped[datetime | None]
