"""What the API takes and gives (pydantic models: the OpenAPI schema is made from them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Time = Annotated[datetime, AfterValidator(_utc)]
"""A time the API gives: the store's times are UTC without a zone; the API says so
("2026-01-31T12:00:00Z"), as the schema's ``date-time`` (RFC 3339) requires: a time without an
offset would be read as local time by a browser."""


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoggedIn(BaseModel):
    user: str
    csrf_token: str = Field(description="send it back in the X-CSRF-Token header with every "
                                        "POST/PUT/DELETE that the session cookie authenticates")
    expires: Time


class Me(BaseModel):
    id: int
    name: str


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    created: Time
    last_used: Time | None


class TokenCreated(TokenOut):
    token: str = Field(description="shown this once: send it as 'Authorization: Bearer <token>'")


class ResultOut(BaseModel):
    id: int
    case_id: int
    job_id: int | None
    model_name: str
    model_version: str
    model_sha256: str
    created: Time
    files: dict[str, str] = Field(description="download URL of each file the result holds")
    archive: str = Field(description="download URL of a zip of all of them")
    organs: list[dict[str, Any]] = Field(default_factory=list,
                                         description="the organs found: name, volume (cm³), "
                                                     "flags (as report.json)")
    warnings: list[str] = Field(default_factory=list)
    comparison: dict[str, Any] | None = Field(
        None, description="scores against the case's reference contours (per organ Dice, HD95, "
                          "surface Dice, volumes), when it had them")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    case_id: int
    model: str | None
    state: str = Field(description="queued, running, done, failed or cancelled")
    stage: str
    fraction: float
    message: str
    attempt: int
    worker: str = Field(description="host:pid of the worker that ran (or runs) it")
    cancel_requested: bool
    result_id: int | None
    created: Time
    started: Time | None
    finished: Time | None


class NewJob(BaseModel):
    model: str | None = Field(None, max_length=64,
                              description="a shipped model's name (GET /api/models); none: the "
                                          "model that fits the CT")


class CaseOut(BaseModel):
    id: int
    filename: str
    format: str
    size_bytes: int
    sha256: str
    description: str
    created: Time
    new: bool = Field(False, description="true when this upload made the case (false: the same "
                                         "content had been uploaded before)")
    reference: str | None = Field(None, description="the reference contours' file name, when "
                                                    "the case has them")
    jobs: list[JobOut] = Field(default_factory=list)
    results: list[ResultOut] = Field(default_factory=list)


class Health(BaseModel):
    status: str
    version: str
    database: str
    queue: str
    workers: int
