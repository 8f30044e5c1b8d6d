"""The arena's REST endpoints: live battles (JSON or server-sent events), names after the vote, demonstrations.

A battle's answers come from the inference engine while the request is open; nothing is
stored until both exist, so a failed or timed-out engine leaves no half battle (503, or
an ``error`` event once streaming has begun, since the status code went out first).
Votes on battles go through the usual ``POST /api/votes``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.concurrency import run_in_threadpool

from feedback_ui.api_errors import error_body
from feedback_ui.auth import DB, Engineer, PathId, Rater, WebContext, web_context
from feedback_ui.schemas_arena import ArenaBattle, ArenaCreate, ArenaNames, DemonstrationCreate, DemonstrationPublic
from rlhf import db
from rlhf.errors import PermissionDenied, RLHFError
from rlhf.inference.battle import PairStream
from rlhf.models import User
from rlhf.services import arena, demonstrations

router = APIRouter(prefix="/api")


def plan(ctx: WebContext, user: User, messages: list[dict]) -> arena.BattlePlan:
    with db.session_scope(ctx.engine) as session:
        return arena.plan_battle(session=session, rater=user, messages=messages, settings=ctx.settings)


def store(ctx: WebContext, user: User, battle: arena.BattlePlan, answers) -> int:
    with db.session_scope(ctx.engine) as session:
        comp = arena.store_battle(
            session=session, rater=user, plan=battle, answers=answers, ttl_s=ctx.settings.arena_battle_ttl_s
        )
        return comp.id


def pair_stream(ctx: WebContext, battle: arena.BattlePlan) -> PairStream:
    return PairStream(ctx.inference, battle.messages, {"a": battle.a, "b": battle.b}, ctx.settings.arena_timeout_s)


def _event(name: str, payload) -> bytes:
    return format_sse_event(event=name, data_str=json.dumps(payload, ensure_ascii=False))


@router.post(
    "/arena",
    status_code=201,
    response_model=ArenaBattle,
    tags=["arena"],
    responses={
        201: {
            "content": {"text/event-stream": {}},
            "description": "the battle (JSON), or with stream: true events "
            "a, b (deltas), done ({comparison_id}) or error",
        },
        422: {"description": "an empty or oversized prompt, turns that do not alternate, too many turns"},
        429: {"description": "too many battles this minute; Retry-After says when to try again"},
        503: {"description": "the inference engine is down, failed or timed out; nothing was stored"},
    },
)
async def post_arena(body: ArenaCreate, request: Request, user: Rater):
    """Two anonymous answers to the last user turn, in a comparison leased to you; vote with POST /api/votes."""
    ctx = web_context(request)
    battle = await run_in_threadpool(plan, ctx, user, [m.model_dump() for m in body.messages])
    pair = pair_stream(ctx, battle)
    if not body.stream:
        answers = await pair.run()
        comparison_id = await run_in_threadpool(store, ctx, user, battle, answers)
        return JSONResponse(
            {"comparison_id": comparison_id, "a": answers[0].text, "b": answers[1].text}, status_code=201
        )

    async def events():
        try:
            async for side, delta in pair.events():
                yield _event(side, delta)
            comparison_id = await run_in_threadpool(store, ctx, user, battle, pair.answers())
        except RLHFError as exc:
            yield _event("error", error_body(exc))
            return
        yield _event("done", {"comparison_id": comparison_id})

    return EventSourceResponse(events(), status_code=201, headers={"Cache-Control": "no-cache"})


@router.get(
    "/arena/{comparison_id}",
    response_model=ArenaNames,
    tags=["arena"],
    responses={
        403: {"description": "you have not voted on this battle yet (or names are not revealed here)"},
        404: {"description": "no such arena battle"},
    },
)
def get_arena_names(comparison_id: PathId, request: Request, user: Rater, session: DB) -> ArenaNames:
    """The two checkpoints behind a battle, once you have voted on it."""
    if not web_context(request).settings.arena_reveal:
        raise PermissionDenied("this deployment does not reveal model names (RLHF_ARENA_REVEAL=false)")
    a, b = arena.battle_names(session=session, rater=user, comparison_id=comparison_id)
    return ArenaNames(comparison_id=comparison_id, a=a, b=b)


@router.post(
    "/demonstrations",
    status_code=201,
    response_model=DemonstrationPublic,
    tags=["arena"],
    responses={
        403: {"description": "the comparison was never shown to you"},
        404: {"description": "no such comparison"},
    },
)
def post_demonstration(body: DemonstrationCreate, request: Request, user: Rater, session: DB):
    """The answer you wanted: to a comparison you were shown (also stored as preferred over both model answers),
    or to a conversation of your own."""
    demo = demonstrations.record_demonstration(
        session=session,
        rater=user,
        text=body.text,
        comparison_id=body.comparison_id,
        messages=[m.model_dump() for m in body.messages] if body.messages is not None else None,
        max_turns=web_context(request).settings.arena_max_turns,
    )
    return DemonstrationPublic.model_validate(demo, from_attributes=True)


@router.get("/demonstrations", response_model=list[DemonstrationPublic], tags=["arena"])
def list_demonstrations(user: Engineer, session: DB, limit: Annotated[int, Query(ge=1, le=10_000)] = 100):
    """Rater-written answers, newest first."""
    return [
        DemonstrationPublic.model_validate(d, from_attributes=True)
        for d in demonstrations.list_demonstrations(session=session, limit=limit)
    ]
