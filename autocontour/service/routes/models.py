"""The models the service can contour with, and the service's health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from autocontour import __version__
from autocontour.service.deps import CurrentUser, State
from autocontour.service.schemas import Health

router = APIRouter(prefix="/api", tags=["service"])


@router.get("/models")
def models(user: CurrentUser) -> list[dict[str, Any]]:
    """The shipped models: name, site, organs, training data, validation and fresh-test Dice."""
    from autocontour.jobs import list_models

    return list_models()


@router.get("/health", response_model=Health)
def health(state: State) -> Health:
    """Whether the database answers (no login needed; says nothing about anybody's cases)."""
    try:
        with state.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
        database = f"error: {type(exc).__name__}"
    queue = "redis" if (state.settings.queue_url or "").startswith(("redis", "unix")) \
        else "sqlite"
    return Health(status="ok" if database == "ok" else "degraded", version=__version__,
                  database=database, queue=queue, workers=state.settings.workers)
