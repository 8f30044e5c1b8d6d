"""The arena: live battles between two anonymous serving checkpoints, one conversation turn each.

A battle is a comparison (source ``arena``) whose prompt is the conversation so far, ending
with the rater's newest user turn, leased to that rater only: the Rate tab's queue never
hands it out. It is stored only once both answers exist (the generation itself happens at
the edge, through :mod:`rlhf.inference`); an unvoted battle expires after
``RLHF_ARENA_BATTLE_TTL_S``. Arena prompts stay out of the pool generation jobs, online RL
and the held-out split draw from, until an engineer promotes one.

Pairing is fair: the two serving checkpoints compared least in the arena so far, in a
random left/right order; with one serving checkpoint, two samples of it (different seeds).
Prompt-tuning checkpoints are skipped, with the reason logged (and given when nothing else
serves): no OpenAI-compatible engine serves one. A LoRA checkpoint battles as its merged copy,
which a merge job makes when it starts serving; until then it is skipped the same way, as being
merged. Nothing here merges or loads a model: this runs inside web requests.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from rlhf.errors import InvalidInput, NotFound, PermissionDenied, RateLimited
from rlhf.inference.client import ChatSampling, Completion
from rlhf.models import (
    Assignment,
    Checkpoint,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    Demonstration,
    Prompt,
    Response,
    User,
    Vote,
    as_utc,
    stored_id,
    utcnow,
)
from rlhf.services.checkpoints import served_name, serving_checkpoints, unmergeable_reason
from rlhf.services.merges import serving_copy_state
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")
RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Contender:
    checkpoint_id: int
    name: str
    model: str  # the name the engine knows it by (never shown to a rater)
    sampling: ChatSampling


@dataclass(frozen=True)
class BattlePlan:
    messages: list[dict[str, str]]
    a: Contender
    b: Contender


def validate_conversation(messages: Any, *, max_chars: int, max_turns: int) -> list[dict[str, str]]:
    """The conversation as plain ``{role, content}`` dicts, or an :class:`InvalidInput` naming the problem.

    An optional system message first, then user and assistant turns alternating, ending
    with a user turn; no turn empty, none longer than ``max_chars``; at most ``max_turns``
    user turns.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidInput(f"messages[{i}] needs a role (system, user or assistant) and string content")
        content = m["content"]
        if not content.strip():
            raise InvalidInput(f"messages[{i}] is empty: write a prompt")
        if len(content) > max_chars:
            raise InvalidInput(
                f"messages[{i}] is {len(content)} characters long; the limit is {max_chars} "
                "(RLHF_ARENA_MAX_PROMPT_CHARS)"
            )
        if "\x00" in content:
            raise InvalidInput(f"messages[{i}] contains a NUL character")
        out.append({"role": m["role"], "content": content})
    turns = out[1:] if out[0]["role"] == "system" else out
    for i, m in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise InvalidInput(
                f"turns must alternate user/assistant after an optional system message, starting "
                f"and ending with the user: turn {i} is {m['role']}, expected {expected}"
            )
    if not turns or turns[-1]["role"] != "user":
        raise InvalidInput("the last message must be the user's (the turn the models answer)")
    user_turns = sum(m["role"] == "user" for m in turns)
    if user_turns > max_turns:
        raise InvalidInput(
            f"{user_turns} user turns; the limit is {max_turns} per conversation "
            "(RLHF_ARENA_MAX_TURNS): start a new conversation"
        )
    return out


def check_rate(*, session: Session, rater: User, per_minute: int) -> None:
    """Refuse a battle past ``per_minute`` battles of this rater in the last minute."""
    since = utcnow() - RATE_WINDOW
    recent = list(
        session.exec(
            select(Comparison.created_at)
            .join(Assignment, col(Assignment.comparison_id) == Comparison.id)
            .where(
                Assignment.rater_id == rater.id,
                Comparison.source == ComparisonSource.arena,
                Comparison.created_at > since,
            )
            .order_by(col(Comparison.created_at))
        )
    )
    if len(recent) >= per_minute:
        oldest = as_utc(recent[len(recent) - per_minute])
        wait = (oldest + RATE_WINDOW - utcnow()).total_seconds()
        raise RateLimited(
            f"at most {per_minute} arena battles a minute (RLHF_ARENA_BATTLES_PER_MINUTE); "
            f"try again in {max(1, round(wait))} s",
            retry_after_s=int(wait) + 1,
        )


def expire_battles(*, session: Session, ttl_s: int) -> int:
    """Close unvoted arena battles older than ``ttl_s`` as expired; returns how many."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    result = session.exec(
        sa.update(Comparison)
        .where(
            col(Comparison.source) == ComparisonSource.arena,
            col(Comparison.status) == ComparisonStatus.open,
            col(Comparison.vote_count) == 0,
            col(Comparison.created_at) < cutoff,
        )
        .values(status=ComparisonStatus.expired)
    )
    session.flush()
    return result.rowcount or 0


def arena_pair_counts(*, session: Session) -> dict[tuple[int, int], int]:
    """Arena comparisons so far per unordered pair of checkpoints (same checkpoint: (c, c))."""
    ra, rb = aliased(Response), aliased(Response)
    rows = session.exec(
        select(ra.checkpoint_id, rb.checkpoint_id, func.count())
        .select_from(Comparison)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        .where(Comparison.source == ComparisonSource.arena)
        .group_by(col(ra.checkpoint_id), col(rb.checkpoint_id))
    ).all()
    counts: dict[tuple[int, int], int] = {}
    for a, b, n in rows:
        if a is None or b is None:
            continue  # only a written answer has no checkpoint, and no battle holds one
        key = _pair_key(a, b)
        counts[key] = counts.get(key, 0) + n
    return counts


def _pair_key(a: int, b: int) -> tuple[int, int]:
    """An unordered pair of checkpoint ids, as :func:`arena_pair_counts` keys it."""
    return (a, b) if a <= b else (b, a)


def plan_battle(
    *, session: Session, rater: User, messages: Any, settings: Settings, rng: random.Random | None = None
) -> BattlePlan:
    """Validate the conversation, apply the rate limit and pick the two contenders."""
    rng = rng or random.Random()
    messages = validate_conversation(
        messages, max_chars=settings.arena_max_prompt_chars, max_turns=settings.arena_max_turns
    )
    check_rate(session=session, rater=rater, per_minute=settings.arena_battles_per_minute)
    expire_battles(session=session, ttl_s=settings.arena_battle_ttl_s)
    serving, skipped = arena_checkpoints(session=session, settings=settings)
    if not serving:
        why = "; ".join(f"checkpoint {c.id} ({c.name}) is skipped: {reason}" for c, reason in skipped)
        raise InvalidInput(
            f"no serving checkpoint can battle yet ({why})"
            if why
            else "no serving checkpoint to battle: an engineer must serve one first"
        )
    if len(serving) == 1:
        first = second = serving[0]
    else:
        counts = arena_pair_counts(session=session)
        pairs = list(combinations(serving, 2))
        fewest = min(counts.get(_pair_key(stored_id(x), stored_id(y)), 0) for x, y in pairs)
        first, second = rng.choice(
            [p for p in pairs if counts.get(_pair_key(stored_id(p[0]), stored_id(p[1])), 0) == fewest]
        )
        if rng.random() < 0.5:
            first, second = second, first
    seed_a = rng.randrange(2**31)
    seed_b = seed_a + 1  # two samples of one checkpoint must not repeat each other
    return BattlePlan(
        messages=messages,
        a=_contender(session, first, settings, seed_a),
        b=_contender(session, second, settings, seed_b),
    )


def arena_checkpoints(
    *, session: Session, settings: Settings | None = None
) -> tuple[list[Checkpoint], list[tuple[Checkpoint, str]]]:
    """The serving policies the arena battles, and those it skips with the reason (prompt tuning; a LoRA
    checkpoint whose merged copy for the engine is not made yet)."""
    settings = settings or get_settings()
    candidates = serving_checkpoints(session=session)
    merging = serving_copy_state(session=session, settings=settings, checkpoints=candidates)
    usable, skipped = [], []
    for ckpt in candidates:
        reason = unmergeable_reason(ckpt)
        if reason:
            skipped.append(
                (
                    ckpt,
                    "no OpenAI-compatible engine serves a prompt-tuning adapter ("
                    + reason
                    + "); it answers in generation jobs, sampled in the worker",
                )
            )
        elif ckpt.id in merging:
            skipped.append((ckpt, merging[ckpt.id]))
        else:
            usable.append(ckpt)
    for ckpt, reason in skipped:
        log.info("arena: checkpoint %s (%s) is skipped: %s", ckpt.id, ckpt.name, reason)
    return usable, skipped


def _contender(session: Session, ckpt: Checkpoint, settings: Settings, seed: int) -> Contender:
    sampling = ChatSampling(
        max_new_tokens=settings.arena_max_new_tokens, temperature=settings.arena_temperature, seed=seed
    )
    return Contender(
        checkpoint_id=stored_id(ckpt),
        name=ckpt.name,
        sampling=sampling,
        model=served_name(session=session, settings=settings, checkpoint=ckpt),
    )


def store_battle(
    *, session: Session, rater: User, plan: BattlePlan, answers: tuple[Completion, Completion], ttl_s: int
) -> Comparison:
    """Store a battle whose two answers both exist: its prompt (out of the pool), answers, comparison and lease."""
    prompt = Prompt(messages=plan.messages, tags=["arena"], source="arena", in_pool=False)
    session.add(prompt)
    session.flush()
    prompt_id = stored_id(prompt)
    stored = []
    for contender, answer in zip((plan.a, plan.b), answers):
        s = contender.sampling
        params = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_new_tokens": s.max_new_tokens,
            "seed": s.seed,
            "source": "arena",
        }
        r = Response(
            prompt_id=prompt_id,
            checkpoint_id=contender.checkpoint_id,
            text=answer.text,
            finished=answer.finished,
            params=params,
        )
        session.add(r)
        stored.append(r)
    session.flush()
    comp = Comparison(
        prompt_id=prompt_id,
        response_a_id=stored_id(stored[0]),
        response_b_id=stored_id(stored[1]),
        target_votes=1,
        strategy="arena",
        source=ComparisonSource.arena,
    )
    session.add(comp)
    session.flush()
    # The rater sees A and B in stored order: the contenders' sides were drawn at random already.
    session.add(
        Assignment(
            comparison_id=stored_id(comp),
            rater_id=stored_id(rater),
            swapped=False,
            expires_at=utcnow() + timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return comp


def battle_names(*, session: Session, rater: User, comparison_id: int) -> tuple[str, str]:
    """The names behind A and B, once this rater has voted on this battle."""
    comp = session.get(Comparison, comparison_id)
    if comp is None or comp.source is not ComparisonSource.arena:
        raise NotFound(f"no arena battle {comparison_id}")
    voted = session.exec(select(Vote.id).where(Vote.comparison_id == comparison_id, Vote.rater_id == rater.id)).first()
    if voted is None:
        raise PermissionDenied("the names are shown only after you have voted on this battle")
    names = []
    for rid in (comp.response_a_id, comp.response_b_id):
        ckpt_id = session.get_one(Response, rid).checkpoint_id  # a comparison's responses always exist
        ckpt = session.get(Checkpoint, ckpt_id) if ckpt_id is not None else None
        names.append(ckpt.name if ckpt else "unknown")
    return names[0], names[1]


def arena_counts(*, session: Session) -> dict[str, int]:
    """Battles by status, arena votes, rater-written preferences and demonstrations, arena prompts promoted."""
    by_status = dict(
        session.exec(
            select(Comparison.status, func.count())
            .where(Comparison.source == ComparisonSource.arena)
            .group_by(Comparison.status)
        ).all()
    )
    votes = session.exec(
        select(func.count())
        .select_from(Vote)
        .join(Comparison, col(Comparison.id) == Vote.comparison_id)
        .where(Comparison.source == ComparisonSource.arena)
    ).one()
    written = session.exec(
        select(func.count()).select_from(Comparison).where(Comparison.source == ComparisonSource.written)
    ).one()
    demos = session.exec(select(func.count()).select_from(Demonstration)).one()
    promoted = session.exec(
        select(func.count()).select_from(Prompt).where(Prompt.source == "arena", Prompt.in_pool)
    ).one()
    return {
        "battles": sum(by_status.values()),
        "voted": by_status.get(ComparisonStatus.closed, 0),
        "open": by_status.get(ComparisonStatus.open, 0),
        "expired": by_status.get(ComparisonStatus.expired, 0),
        "votes": votes,
        "written_preferences": written,
        "demonstrations": demos,
        "promoted_prompts": promoted,
    }


def promote_prompts(*, session: Session, prompt_ids: list[int]) -> int:
    """Put arena prompts into the pool generation jobs, online RL and the held-out split draw from."""
    prompts = list(session.exec(select(Prompt).where(col(Prompt.id).in_(prompt_ids))))
    missing = sorted(set(prompt_ids) - {p.id for p in prompts})
    if missing:
        raise NotFound(f"no prompt {missing[0]}")
    for p in prompts:
        p.in_pool = True
        session.add(p)
    session.flush()
    return len(prompts)
