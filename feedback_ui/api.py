"""The REST API under ``/api``: thin handlers over :mod:`rlhf.services`.

Each handler authenticates through a role dependency, calls service functions and turns
rows into ``…Public`` schemas. The request's session (:data:`~feedback_ui.auth.DB`) is its
unit of work, committed before the answer goes out, so a 2xx means it is stored. Domain
errors propagate to the one handler in :mod:`feedback_ui.app`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request, Response

from feedback_ui.auth import DB, Engineer, PathId, Rater, web_context
from feedback_ui.schemas import (
    ComparisonHandout,
    GuidelinesBase,
    GuidelinesPublic,
    Handed,
    HealthPublic,
    LeaderboardPublic,
    RankingHandout,
    SkipPublic,
    VoteAndNext,
    VoteCreate,
    VotePublic,
    VoteStrength,
)
from rlhf.errors import InvalidInput
from rlhf.models import Role, Vote
from rlhf.services import (
    app_settings,
    comparisons,
    rankings,
    rating,
    stats,
)
from rlhf.services.leaderboard import leaderboard as fit_leaderboard
from rlhf.services.votes import record_vote

BODY_LIMIT = 2 * 1024 * 1024  # JSON bodies: a prompt list of a few thousand prompts fits

router = APIRouter(prefix="/api")


@router.get(
    "/health",
    response_model=HealthPublic,
    tags=["status"],
    responses={503: {"model": HealthPublic, "description": "the database does not answer"}},
)
def health(request: Request, session: DB, response: Response) -> HealthPublic:
    """Anyone may ask. 503 when the database is down; "degraded" (still 200) when only the broker is,
    since rating goes on without it."""
    try:
        session.execute(sa.text("SELECT 1"))
        database = "ok"
    except sa.exc.SQLAlchemyError as exc:
        database = f"unavailable: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
        response.status_code = 503
    broker = web_context(request).jobs.status()
    healthy = database == "ok" and not broker.startswith("unavailable")
    return HealthPublic(status="ok" if healthy else "degraded", database=database, broker=broker)


# --- rating ---------------------------------------------------------------------------------------


_KINDS_DOC = (
    "what this client can show: pair, ranking, or both (comma-separated); without it, pairs only, as clients always got"
)
Kinds = Annotated[str | None, Query(description=_KINDS_DOC, max_length=64)]


@router.get(
    "/comparisons/next",
    response_model=Handed,
    tags=["rating"],
    responses={204: {"description": "nothing left for this rater"}},
)
def next_comparison(request: Request, user: Rater, session: DB, kinds: Kinds = None):
    """What this rater should judge now: a pair in the order they see it (a = left), or with
    ``kinds=pair,ranking`` possibly a ranking (its answers in the order they see them).

    It is leased to them (a pair for five minutes, a ranking for five per two answers); asking again
    returns the same one.
    """
    settings = web_context(request).settings
    item = rating.next_item(session=session, rater=user, kinds=rating.parse_kinds(kinds), gold_rate=settings.gold_rate)
    if item is None:
        return Response(status_code=204)
    return handed_public(item)


_NEXT_DOC = (
    "also hand out this rater's next item (leased to them; of the kinds named by kinds): answer {vote, next}; "
    "without it nothing is leased"
)


@router.post(
    "/votes",
    response_model=VotePublic | VoteAndNext,
    status_code=201,
    tags=["rating"],
    responses={
        200: {
            "model": VotePublic | VoteAndNext,
            "description": "a repeat: this rater's vote on this comparison was already stored, and is returned "
            "unchanged",
        },
        404: {"description": "no such comparison"},
        409: {
            "description": "the comparison is closed, was not handed to this rater, or the key was used for "
            "another vote"
        },
    },
)
def post_vote(
    body: VoteCreate,
    request: Request,
    user: Rater,
    session: DB,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
    next_pair: Annotated[bool, Query(alias="next", description=_NEXT_DOC)] = False,
    kinds: Kinds = None,
):
    """Record a vote; 201 when stored. ``choice`` is in the order this rater was shown.

    Sending it again (a double click, a retry after a timeout) never makes a second vote:
    the answer is 200 with the vote already stored, even if the repeat says something else.
    With ``next=true`` the answer also carries the next pair, saving a ``GET /api/comparisons/next``.
    """
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise InvalidInput("idempotency_key in the body and the Idempotency-Key header differ")
    key = body.idempotency_key or idempotency_key
    fields = {
        "comparison_id": body.comparison_id,
        "choice": body.choice,
        "rationale": body.rationale,
        "strength": body.strength,
        "idempotency_key": f"{user.id}:{key}" if key else None,
        "require_handout": True,
    }
    wanted = rating.parse_kinds(kinds)
    if next_pair:
        result, handout = rating.vote_then_next(
            session=session, rater=user, gold_rate=web_context(request).settings.gold_rate, kinds=wanted, **fields
        )
    else:
        result, handout = record_vote(session=session, rater=user, **fields), None
    if not result.created:
        response.status_code = 200
    vote = _vote_public(result.vote, result.created)
    if not next_pair:
        return vote
    return VoteAndNext(vote=vote, next=handed_public(handout) if handout else None)


@router.delete(
    "/votes/{vote_id}",
    response_model=ComparisonHandout,
    tags=["rating"],
    responses={
        404: {"description": "no such vote of this rater's"},
        409: {"description": "the undo window has passed, or a training run's snapshot already holds the vote"},
    },
)
def undo_vote(vote_id: PathId, request: Request, user: Rater, session: DB) -> ComparisonHandout:
    """Take back one's own vote within RLHF_UNDO_WINDOW_S seconds: the pair is reopened and handed back
    (leased to this rater, in the order they saw it), which is the answer."""
    handout = rating.undo_vote(
        session=session, rater=user, vote_id=vote_id, window_s=web_context(request).settings.undo_window_s
    )
    return _handout_public(handout)


@router.patch(
    "/votes/{vote_id}",
    response_model=VotePublic,
    tags=["rating"],
    responses={
        404: {"description": "no such vote of this rater's"},
        409: {"description": "the undo window has passed, or a training run's snapshot already holds the vote"},
        422: {"description": "a strength on a tie or a both-bad vote, or not 1, 2 or 3"},
    },
)
def set_vote_strength(vote_id: PathId, body: VoteStrength, request: Request, user: Rater, session: DB) -> VotePublic:
    """Say how much better one's own A or B vote found its answer (or take it back with null), within
    RLHF_UNDO_WINDOW_S seconds of casting it: for a rater who voted with a button and picks the strength after."""
    vote = rating.set_strength(
        session=session,
        rater=user,
        vote_id=vote_id,
        strength=body.strength,
        window_s=web_context(request).settings.undo_window_s,
    )
    return _vote_public(vote, created=False)


@router.post(
    "/comparisons/{comparison_id}/skip",
    response_model=SkipPublic,
    status_code=201,
    tags=["rating"],
    responses={404: {"description": "no such comparison"}, 409: {"description": "this rater already voted on it"}},
)
def skip_comparison(comparison_id: PathId, user: Rater, session: DB) -> SkipPublic:
    """Pass on a pair: it goes back to the pool and is not handed to this rater again for a day."""
    skip = rating.skip_comparison(session=session, rater=user, comparison_id=comparison_id)
    return SkipPublic(comparison_id=skip.comparison_id, skipped_at=skip.created_at)


@router.post("/leases/release", tags=["rating"])
def release_leases(user: Rater, session: DB) -> dict[str, int]:
    """Give back the pairs leased to this rater (the page does this when it closes), so others get them now."""
    return {"released": rating.release_leases(session=session, rater_id=user.id)}


def _handout_public(handout: comparisons.Handout) -> ComparisonHandout:
    return ComparisonHandout(comparison_id=handout.comparison_id, prompt=handout.prompt, a=handout.a, b=handout.b)


def handed_public(item: rating.Item) -> ComparisonHandout | RankingHandout:
    if isinstance(item, rankings.RankingHandout):
        return RankingHandout(ranking_id=item.ranking_id, prompt=item.prompt, answers=item.answers)
    return _handout_public(item)


def _vote_public(vote: Vote, created: bool) -> VotePublic:
    choice = vote.choice.swapped() if vote.shown_swapped else vote.choice
    return VotePublic(
        id=vote.id,
        comparison_id=vote.comparison_id,
        choice=choice,
        rationale=vote.rationale,
        strength=vote.strength,
        created_at=vote.created_at,
        created=created,
    )


@router.get("/stats", tags=["rating"])
def get_stats(user: Rater, session: DB) -> dict[str, Any]:
    """Counts. A rater sees their own; engineers and admins see everything, plus their own under ``mine``."""
    if user.role.allows(Role.engineer):
        return stats.engineer_stats(session=session, rater_id=user.id)
    return {"scope": "mine", **stats.rater_stats(session=session, rater_id=user.id)}


@router.get("/leaderboard", response_model=LeaderboardPublic, tags=["rating"])
def get_leaderboard(
    user: Rater,
    session: DB,
    bootstrap: Annotated[int, Query(ge=0, le=1000)] = 200,
    include_simulated: bool = False,
    source: Annotated[
        list[Literal["queue", "arena", "ranking"]],
        Query(description="count only votes on comparisons of these sources: queue, arena, ranking (default: all)"),
    ] = [],
) -> LeaderboardPublic:
    """Checkpoints ranked by a Bradley–Terry fit of human votes between them (the Rate queue's, rankings' and
    the arena's), with 95% bootstrap intervals (a ranking's order resampled as one)."""
    board = fit_leaderboard(
        session=session, bootstrap=bootstrap, include_simulated=include_simulated, sources=list(source) or None
    )
    return LeaderboardPublic.model_validate(board)


@router.get("/guidelines", response_model=GuidelinesPublic, tags=["rating"])
def get_guidelines(user: Rater, session: DB) -> GuidelinesPublic:
    """The rater guidelines (Markdown); empty until someone writes them."""
    row = app_settings.get_guidelines(session=session)
    return GuidelinesPublic(markdown=row.value if row else "", updated_at=row.updated_at if row else None)


@router.put("/guidelines", response_model=GuidelinesPublic, tags=["rating"])
def put_guidelines(body: GuidelinesBase, user: Engineer, session: DB) -> GuidelinesPublic:
    row = app_settings.set_guidelines(session=session, text=body.markdown)
    return GuidelinesPublic(markdown=row.value, updated_at=row.updated_at)
