"""Votes by kind over REST (engineer role): counted, listed, and a program's votes removed.

``GET /api/votes?kind=simulated`` lists votes newest first; ``GET /api/votes/kinds`` counts
them per kind; ``DELETE /api/votes?kind=simulated`` removes simulated raters' votes (or a
reward model's machine labels), never people's, and never those a training run holds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from feedback_ui.auth import DB, Engineer
from feedback_ui.schemas import UTCDatetime
from rlhf.models import VoteKind
from rlhf.services import vote_admin

router = APIRouter(prefix="/api")


class VoteListed(BaseModel):
    id: int
    comparison_id: int
    rater: str
    kind: VoteKind
    source: str
    choice: str  # in the stored order (response_a / response_b)
    strength: int | None  # 1 slightly, 2 clearly, 3 much better; None when not said
    label_p: float | None
    created_at: UTCDatetime


class VotesRemoved(BaseModel):
    kind: VoteKind
    source: str | None
    removed: int
    kept_for_runs: int
    reopened: int


@router.get("/votes", response_model=list[VoteListed], tags=["data"])
def list_votes(
    user: Engineer,
    session: DB,
    kind: Annotated[VoteKind | None, Query(description="only votes of this kind")] = None,
    source: Annotated[str | None, Query(max_length=128, description="only this source, e.g. simulated:shorter")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """Votes newest first, with their rater and kind."""
    return vote_admin.list_votes(session=session, kind=kind, source=source, limit=limit, offset=offset)


@router.get("/votes/kinds", tags=["data"])
def vote_kinds(user: Engineer, session: DB) -> dict[str, int]:
    """How many votes of each kind are stored."""
    return vote_admin.counts_by_kind(session=session)


@router.delete(
    "/votes",
    response_model=VotesRemoved,
    tags=["data"],
    responses={422: {"description": "a kind that is people's votes (human), or an unknown kind"}},
)
def remove_votes(
    user: Engineer,
    session: DB,
    kind: Annotated[VoteKind, Query(description="simulated, machine or judge")],
    source: Annotated[str | None, Query(max_length=128, description="only this source")] = None,
) -> dict:
    """Remove every vote of a kind a program cast (simulated raters, machine labels); pairs they filled reopen."""
    return vote_admin.remove_votes(session=session, kind=kind, source=source).as_dict()
