"""``autocontour dicom-node status``: the series received, their cases and jobs, and the sends
of their contours, from the store (the node need not be running)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from autocontour.store.schema import DicomSend, DicomSeries, Job, Result


def node_status(home: str | Path | None = None, database_url: str | None = None,
                limit: int = 50) -> dict[str, Any]:
    """The newest ``limit`` receptions (newest first), each with its job and its sends.

    Raises:
        InvalidInputError: the store cannot be opened.
    """
    from autocontour.store.database import open_store

    store = open_store(home, database_url)
    try:
        with store.session() as session:
            rows = list(session.scalars(select(DicomSeries).order_by(DicomSeries.id.desc())
                                        .limit(limit)))
            series = []
            for row in rows:
                job = session.get(Job, row.job_id) if row.job_id is not None else None
                result = session.get(Result, job.result_id) if job and job.result_id else None
                sends = session.scalars(select(DicomSend).where(DicomSend.series_id == row.id)
                                        .order_by(DicomSend.id))
                series.append({
                    "id": row.id, "series_uid": row.series_uid, "study_uid": row.study_uid,
                    "calling_ae": row.calling_ae, "peer": row.peer,
                    "instances": row.instances, "state": row.state, "message": row.message,
                    "body_part": row.body_part, "description": row.description,
                    "rule": row.rule, "model": row.model,
                    "model_used": result.model_name if result else None, "case_id": row.case_id,
                    "job_id": row.job_id, "job_state": job.state if job else None,
                    "job_stage": job.stage if job else None,
                    "received": _iso(row.received), "last_received": _iso(row.last_received),
                    "completed": _iso(row.completed),
                    "sends": [{"id": s.id, "destination": f"{s.ae_title}@{s.host}:{s.port}",
                               "tls": s.tls, "seg": s.send_seg, "state": s.state,
                               "attempts": s.attempts, "message": s.message,
                               "next_attempt": _iso(s.next_attempt), "sent": _iso(s.sent)}
                              for s in sends]})
    finally:
        store.engine.dispose()
    return {"home": str(store.home), "series": series}


def _iso(stamp: datetime | None) -> str | None:
    return None if stamp is None else stamp.isoformat(timespec="seconds") + "Z"


def format_status(status: dict[str, Any]) -> str:
    """The status as two tables: the series, then the sends."""
    series = status["series"]
    if not series:
        return f"no DICOM series received yet (store {status['home']})"
    lines = [f"series received (newest first; store {status['home']}, times UTC)",
             (f"{'id':>4}  {'received':<19}  {'from':<16}  {'slices':>6}  {'state':<9}  "
              f"{'case':>4}  {'job':<12}  {'model':<18}  series / message")]
    for s in series:
        job = f"{s['job_id']} {s['job_state']}" if s["job_id"] is not None else "-"
        what = s["description"] or s["series_uid"]
        message = f": {s['message']}" if s["message"] else ""
        lines.append(f"{s['id']:>4}  {(s['received'] or '')[:19].replace('T', ' '):<19}  "
                     f"{s['calling_ae'] or '?':<16}  {s['instances']:>6}  {s['state']:<9}  "
                     f"{s['case_id'] if s['case_id'] is not None else '-':>4}  {job:<12}  "
                     f"{s['model'] or s['model_used'] or 'by the CT':<18}  {what}{message}")
    sends = [(s["id"], d) for s in series for d in s["sends"]]
    if sends:
        lines += ["", "sends", (f"{'id':>4}  {'series':>6}  {'destination':<32}  "
                                f"{'state':<8}  {'tries':>5}  message")]
        for series_id, d in sends:
            lines.append(f"{d['id']:>4}  {series_id:>6}  {d['destination']:<32}  "
                         f"{d['state']:<8}  {d['attempts']:>5}  {d['message']}")
    return "\n".join(lines)
