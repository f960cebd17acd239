"""The DICOM node (``autocontour dicom-node``): CTs in over DICOM, RTSTRUCTs back out.

A Storage SCP (pynetdicom) that accepts CT Image Storage and C-ECHO from the calling AE titles
its settings allow; every instance is on disk (fsync'd) before it is acknowledged. A series
complete after a quiet time becomes a case of the configured owner in the service's store and
a job on the service's queue (the model chosen by routing rules, else by the CT), so the web
page shows it like any other case; when the job is done the RTSTRUCT (and the DICOM-SEG) is
C-STOREd to the destinations, with retries, and every step is recorded
(``dicom_series``, ``dicom_sends``; ``autocontour dicom-node status``).

* :func:`~autocontour.dicom_node.config.load_node_config`: the settings file (YAML).
* :class:`~autocontour.dicom_node.node.DicomNode`, :func:`~autocontour.dicom_node.node.run_node`.
* :func:`~autocontour.dicom_node.status.node_status`,
  :func:`~autocontour.dicom_node.status.format_status`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {"NodeConfig": "autocontour.dicom_node.config",
         "load_node_config": "autocontour.dicom_node.config",
         "DicomNode": "autocontour.dicom_node.node", "run_node": "autocontour.dicom_node.node",
         "serve_with_node": "autocontour.dicom_node.node",
         "node_status": "autocontour.dicom_node.status",
         "format_status": "autocontour.dicom_node.status"}

if TYPE_CHECKING:
    from autocontour.dicom_node.config import NodeConfig, load_node_config
    from autocontour.dicom_node.node import DicomNode, run_node, serve_with_node
    from autocontour.dicom_node.status import format_status, node_status

__all__ = ["DicomNode", "NodeConfig", "format_status", "load_node_config", "node_status",
           "run_node", "serve_with_node"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.dicom_node' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
