"""The service's settings: one object, from flags, environment variables (``AUTOCONTOUR_*``) and
defaults, in that order of precedence.

| setting | variable | default |
|---|---|---|
| home | ``AUTOCONTOUR_HOME`` | ``~/.local/share/autocontour`` (database, uploads, results) |
| database_url | ``AUTOCONTOUR_DATABASE_URL`` | SQLite in the home folder |
| queue_url | ``AUTOCONTOUR_QUEUE_URL`` | a SQLite queue in the home folder; ``redis://host:6379/0`` for workers on other machines |
| host, port | ``AUTOCONTOUR_HOST``, ``AUTOCONTOUR_PORT`` | 127.0.0.1, 8000 |
| workers | ``AUTOCONTOUR_WORKERS`` | 1 worker thread in the server; 0: only separate ``autocontour worker`` processes |
| device | ``AUTOCONTOUR_DEVICE`` | auto (a GPU when there is one) |
| threads | ``AUTOCONTOUR_THREADS`` | the CPUs the process may use |
| max_upload_mb | ``AUTOCONTOUR_MAX_UPLOAD_MB`` | 8192 |
| session_hours | ``AUTOCONTOUR_SESSION_HOURS`` | 12 |
| secure_cookies | ``AUTOCONTOUR_SECURE_COOKIES`` | false (set true behind HTTPS) |
| job_lease_s | ``AUTOCONTOUR_JOB_LEASE_S`` | 120: a running job whose worker is silent this long runs again |
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autocontour.store.database import default_home

QUEUE_SCHEMES = ("sqlite:///", "redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    """Everything the server and its workers are configured by (module docstring)."""

    model_config = SettingsConfigDict(env_prefix="AUTOCONTOUR_", frozen=True)

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    queue_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=0, le=64)
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    max_upload_mb: float = Field(8192, gt=0)
    session_hours: float = Field(12, gt=0)
    secure_cookies: bool = False
    job_lease_s: float = Field(120, gt=0)
    poll_s: float = Field(0.5, gt=0, description="how often an idle SQLite queue is looked at, "
                                                  "and how often progress events are sent")

    @field_validator("queue_url")
    @classmethod
    def _known_queue(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(QUEUE_SCHEMES):
            raise ValueError(f"queue URL {url!r}: use redis://host:port/db or leave it unset "
                             "(a SQLite queue in the home folder)")
        return url

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def load_settings(**flags: object) -> Settings:
    """Settings from the flags given (None: not given, so the environment or default applies).

    Raises:
        InvalidInputError: a value out of range or of the wrong type, named with its variable.
    """
    from pydantic import ValidationError

    from autocontour.errors import InvalidInputError

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'} "
                             f"(--{str(e['loc'][0]).replace('_', '-')} or AUTOCONTOUR_"
                             f"{str(e['loc'][0]).upper()}): {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"service settings: {problems}") from None
