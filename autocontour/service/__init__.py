"""The clinical service: an HTTP API (FastAPI) over the case store and the job queue.

* :func:`~autocontour.service.app.create_app`: the application for a
  :class:`~autocontour.service.settings.Settings`.
* :func:`~autocontour.service.run.serve` (``autocontour serve``) and
  :func:`~autocontour.service.run.run_worker` (``autocontour worker``).

Embedded by default (SQLite database and queue in the home folder, worker threads inside the
server); PostgreSQL, a Redis queue and worker processes on other machines with the same code.
The routes call the same jobs as the CLI (:func:`autocontour.jobs.run_contour_job`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {"Settings": "autocontour.service.settings", "load_settings": "autocontour.service.settings",
         "create_app": "autocontour.service.app",
         "serve": "autocontour.service.run", "run_worker": "autocontour.service.run"}

if TYPE_CHECKING:
    from autocontour.service.app import create_app
    from autocontour.service.run import run_worker, serve
    from autocontour.service.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings", "run_worker", "serve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.service' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
