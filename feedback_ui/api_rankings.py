"""Rankings over REST: a rater orders the answers they were handed in one judgement.

``GET /api/comparisons/next?kinds=pair,ranking`` may hand out a ranking; ``POST /api/rankings``
stores the rater's order (as one vote per pair of its answers); ``DELETE
/api/rankings/{id}/order`` takes it back within the undo window; ``POST
/api/rankings/{id}/skip`` passes on it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from feedback_ui.api import Kinds, handed_public
from feedback_ui.auth import DB, PathId, Rater, web_context
from feedback_ui.schemas import Handed, RankingAndNext, RankingCreate, RankingHandout, RankingPublic, SkipPublic
from rlhf.errors import InvalidInput
from rlhf.services import rankings, rating

router = APIRouter(prefix="/api")


@router.post(
    "/rankings",
    response_model=RankingPublic | RankingAndNext,
    status_code=201,
    tags=["rating"],
    responses={
        200: {"model": RankingPublic | RankingAndNext, "description": "a repeat: the order already stored, unchanged"},
        404: {"description": "no such ranking"},
        409: {"description": "the ranking is closed, was not handed to this rater, or its place went to another"},
        422: {"description": "the order leaves an answer out, names one twice, or names one that is not there"},
    },
)
def post_ranking(
    body: RankingCreate,
    request: Request,
    user: Rater,
    session: DB,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
    next_item: Annotated[bool, Query(alias="next", description="also hand out this rater's next item")] = False,
    kinds: Kinds = "pair,ranking",
):
    """Store this rater's order of a ranking they were handed; 201 when stored, 200 for a repeat.

    ``order`` names every answer by its index in the order they were shown (from 0), in groups, best
    group first; answers in one group tie. It is stored as one vote per pair of answers.
    """
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidInput("idempotency_key in the body and the Idempotency-Key header differ")
    key = body.idempotency_key or idempotency_key
    fields = {
        "ranking_id": body.ranking_id,
        "order": body.order,
        "rationale": body.rationale,
        "idempotency_key": f"{user.id}:{key}" if key else None,
    }
    if next_item:
        result, item = rating.rank_then_next(
            session=session,
            rater=user,
            kinds=rating.parse_kinds(kinds),
            gold_rate=web_context(request).settings.gold_rate,
            **fields,
        )
    else:
        result, item = rankings.submit_ranking(session=session, rater=user, **fields), None
    if not result.created:
        response.status_code = 200
    stored = RankingPublic(
        ranking_id=result.ranking_id,
        order=result.order,
        vote_ids=result.vote_ids,
        created_at=result.created_at,
        created=result.created,
    )
    if not next_item:
        return stored
    return RankingAndNext(ranking=stored, next=handed_public(item) if item else None)


@router.delete(
    "/rankings/{ranking_id}/order",
    response_model=RankingHandout,
    tags=["rating"],
    responses={
        404: {"description": "no order of this rater's on that ranking"},
        409: {"description": "the undo window has passed, or a training run's snapshot already holds it"},
    },
)
def undo_ranking(ranking_id: PathId, request: Request, user: Rater, session: DB) -> Handed:
    """Take back one's own order within RLHF_UNDO_WINDOW_S seconds: all its votes go, and the ranking is
    handed back (leased to this rater, in the order they saw it), which is the answer."""
    handout = rating.undo_ranking(
        session=session, rater=user, ranking_id=ranking_id, window_s=web_context(request).settings.undo_window_s
    )
    return handed_public(handout)


@router.post(
    "/rankings/{ranking_id}/skip",
    response_model=SkipPublic,
    status_code=201,
    tags=["rating"],
    responses={404: {"description": "no such ranking"}, 409: {"description": "already ordered, or never handed out"}},
)
def skip_ranking(ranking_id: PathId, user: Rater, session: DB) -> SkipPublic:
    """Pass on a ranking: it goes back to the pool and is not handed to this rater again for a day."""
    lease = rating.skip_ranking(session=session, rater=user, ranking_id=ranking_id)
    return SkipPublic(ranking_id=ranking_id, skipped_at=lease.skipped_at)
