"""``create_app(settings)``: the FastAPI application (routes, errors, the queue's lifetime)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from autocontour import __version__
from autocontour.errors import AutocontourError
from autocontour.service.deps import AppState
from autocontour.service.limits import BodyLimit, LoginFirst
from autocontour.service.queue import make_queue
from autocontour.service.routes import auth, cases, jobs, models, results, viewer
from autocontour.service.settings import Settings
from autocontour.store.cases import ConflictError, NotFoundError
from autocontour.store.database import open_store

LOG = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """Contour CTs with autocontour's models from scripts, a planning system or the page.

Authenticate with `Authorization: Bearer <token>` (make one with `POST /api/tokens` after logging
in, or `autocontour user token NAME`), or log in with `POST /api/login` (a session cookie; send
the returned `csrf_token` in `X-CSRF-Token` with every POST/PUT/DELETE). Every case, job and
result belongs to the user who made it; anybody else gets 404.
"""


class _Revalidated(StaticFiles):
    """The page's scripts and styles: the browser asks again (a 304 when unchanged), so an
    upgraded server never runs with yesterday's scripts."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service: opens (and migrates) the store, makes the queue and, with
    ``settings.workers`` > 0, runs that many worker threads inside the server.

    Raises:
        InvalidInputError: the store cannot be opened, or the queue URL is not one we know.
    """
    settings = settings or Settings()
    store = open_store(settings.home, settings.database_url)
    queue = make_queue(settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        consumer = queue.consumer(settings.workers, embedded=True) if settings.workers else None
        queue.recover()  # jobs queued or running when the server last stopped run (again)
        if consumer is not None:
            consumer.start()
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop(graceful=True)
            store.engine.dispose()

    app = FastAPI(title="autocontour", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.autocontour = AppState(settings, store, queue)
    for module in (auth, cases, jobs, results, viewer, models):
        app.include_router(module.router)
    if STATIC.is_dir():  # the page (index.html) and its scripts
        app.mount("/static", _Revalidated(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def page() -> FileResponse:
            return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(LoginFirst, store=store)  # outermost: before any body is read

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_409_CONFLICT)

    @app.exception_handler(AutocontourError)
    async def refused(_: Request, exc: AutocontourError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    return app
