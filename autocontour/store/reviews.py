"""Reviews of results: per organ "accepted" or "needs edit" with a comment, and an overall
comment. Each save is a new version (earlier ones are kept); the latest is the review."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autocontour.errors import InvalidInputError
from autocontour.store.cases import ConflictError
from autocontour.store.schema import Result, Review, User

STATUSES = ("accepted", "needs edit")
MAX_COMMENT = 4000


def latest_review(session: Session, result: Result) -> Review | None:
    """The latest version of a result's review, or None."""
    return session.scalar(select(Review).where(Review.result_id == result.id)
                          .order_by(Review.version.desc()).limit(1))


def save_review(session: Session, result: Result, reviewer: User,
                organs: dict[str, dict[str, Any]], comment: str,
                organ_names: list[str] | None = None) -> Review:
    """Save a new version of the result's review.

    Args:
        organs: organ name -> {"status": "accepted" | "needs edit" | None, "comment": str}.
        organ_names: the result's structures (a name outside them is refused); None: any.

    Raises:
        InvalidInputError: an unknown organ or status, a comment over 4000 characters.
        ConflictError: another review of the same result was saved at the same moment (send
            it again).
    """
    clean: dict[str, dict[str, Any]] = {}
    for name, entry in organs.items():
        if organ_names is not None and name not in organ_names:
            raise InvalidInputError(f"review of result {result.id}: no structure {name!r}")
        status = entry.get("status")
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f"review of {name}: status must be one of "
                                    f"{', '.join(STATUSES)} (or none), got {status!r}")
        text = str(entry.get("comment") or "")
        if len(text) > MAX_COMMENT:
            raise InvalidInputError(f"review of {name}: a comment has at most {MAX_COMMENT} "
                                    "characters")
        clean[name] = {"status": status, "comment": text}
    if len(comment) > MAX_COMMENT:
        raise InvalidInputError(f"a comment has at most {MAX_COMMENT} characters")
    version = (session.scalar(select(func.max(Review.version))
                              .where(Review.result_id == result.id)) or 0) + 1
    review = Review(result_id=result.id, version=version, reviewer_id=reviewer.id,
                    organs=json.dumps(clean), comment=comment)
    session.add(review)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ConflictError(f"result {result.id}: another review was saved at the same time; "
                            "load it and save again") from None
    return review


def review_dict(session: Session, review: Review | None) -> dict[str, Any]:
    """A review as the API and the exported report show it (version 0: not reviewed yet)."""
    if review is None:
        return {"version": 0, "organs": {}, "comment": "", "reviewer": None, "saved": None}
    reviewer = session.get(User, review.reviewer_id)
    return {"version": review.version, "organs": json.loads(review.organs),
            "comment": review.comment, "reviewer": reviewer.name if reviewer else None,
            "saved": review.saved.isoformat() + "Z"}
