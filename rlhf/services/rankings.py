"""Rankings: K answers to one prompt, ordered by a rater in one judgement.

A ranking is stored as the C(K,2) comparisons of its answers (source ``ranking``), and a
rater's order as one ordinary vote on each: the better-placed answer wins, answers placed
together tie (a tied top group is all "best"). Snapshots, undo, agreement, soft labels and
the export read those votes as they read any other; the votes carry the ``ranking_id``, so
training can weight a ranking as one judgement and split by ranking, and the leaderboard can
resample by ranking.

A ranking is handed out like a pair: under a lease (longer, as there are more answers to
read) that holds one of its ``target_votes`` places, in a random order of its answers that
the lease keeps; the indexes of a rater's order are positions in that shown order. A late
order (the lease given back or run out) is stored only while a place is free, as a late
vote is. The pairs of a ranking are never handed out or voted on alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import (
    PRIORITY_REGULAR,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    Prompt,
    Ranking,
    RankingLease,
    Response,
    User,
    Vote,
    VoteKind,
    as_utc,
    stored_id,
    utcnow,
)
from rlhf.services.comparisons import LEASE, SKIP_HIDES, comparison_lock
from rlhf.services.ranking_orders import order_from_choices, pair_choices, parse_order
from rlhf.services.votes import check_rationale

MIN_ANSWERS, MAX_ANSWERS = 2, 6


@dataclass
class RankingHandout:
    """A ranking as one rater sees it: ``answers[i]`` is the answer shown at position ``i``."""

    ranking_id: int
    prompt: list[dict]
    answers: list[str]


@dataclass
class RankingResult:
    ranking_id: int
    order: list[list[int]]  # as the rater gave it: positions in the shown order, best group first
    vote_ids: list[int]
    created: bool  # False when this repeated an order already stored
    created_at: Any = None


def lease_for(answers: int) -> timedelta:
    """A ranking's lease: a pair's for every two answers to read."""
    return LEASE * max(1, (answers + 1) // 2)


def open_ranking(
    *,
    session: Session,
    prompt_id: int,
    response_ids: Sequence[int],
    target_votes: int = 1,
    job_id: int | None = None,
    priority: int = PRIORITY_REGULAR,
) -> Ranking | None:
    """Open a ranking of these answers, with one comparison per pair of them; None when fewer than two
    differ. Identical answers (the same text, surrounding space aside) are dropped first, keeping the
    first: there is nothing to choose between them."""
    texts = dict(session.exec(select(Response.id, Response.text).where(col(Response.id).in_(list(response_ids)))).all())
    missing = [r for r in response_ids if r not in texts]
    if missing:
        raise NotFound(f"no response {missing[0]}")
    distinct: dict[str, int] = {}
    for rid in response_ids:
        distinct.setdefault(texts[rid].strip(), rid)
    kept = list(distinct.values())
    if len(kept) < MIN_ANSWERS:
        return None
    if len(kept) > MAX_ANSWERS:
        raise InvalidInput(f"a ranking has at most {MAX_ANSWERS} answers, not {len(kept)}")
    ranking = Ranking(
        prompt_id=prompt_id,
        response_ids=kept,
        target_votes=max(1, target_votes),
        job_id=job_id,
        priority=priority,
    )
    session.add(ranking)
    session.flush()
    for a, b in combinations(kept, 2):
        session.add(
            Comparison(
                prompt_id=prompt_id,
                response_a_id=a,
                response_b_id=b,
                target_votes=ranking.target_votes,
                strategy="ranking",
                job_id=job_id,
                source=ComparisonSource.ranking,
                priority=priority,
                ranking_id=ranking.id,
            )
        )
    session.flush()
    return ranking


def get_ranking(*, session: Session, ranking_id: int) -> Ranking:
    ranking = session.get(Ranking, ranking_id)
    if ranking is None:
        raise NotFound(f"no ranking {ranking_id}")
    return ranking


# --- the hand-out ------------------------------------------------------------------------------


def _ranked_by(rater_id: int):
    return sa.exists().where(col(Vote.ranking_id) == Ranking.id, col(Vote.rater_id) == rater_id)


def _others_leases(rater_id: int, now):
    ranked = sa.exists().where(
        col(Vote.ranking_id) == RankingLease.ranking_id, col(Vote.rater_id) == RankingLease.rater_id
    )
    return (
        select(func.count())
        .select_from(RankingLease)
        .where(
            RankingLease.ranking_id == Ranking.id,
            RankingLease.expires_at > now,
            RankingLease.rater_id != rater_id,
            ~ranked,
        )
        .correlate(Ranking)
        .scalar_subquery()
    )


def _open_for(rater_id: int, now) -> list:
    """An open ranking this rater has not ordered nor skipped lately, with a place left for them."""
    skipped = sa.exists().where(
        col(RankingLease.ranking_id) == Ranking.id,
        col(RankingLease.rater_id) == rater_id,
        col(RankingLease.skipped_at) > now - SKIP_HIDES,
    )
    return [
        Ranking.status == ComparisonStatus.open,
        ~_ranked_by(rater_id),
        ~skipped,
        Ranking.vote_count + _others_leases(rater_id, now) < Ranking.target_votes,
    ]


def rankings_left_for(*, session: Session, rater_id: int) -> int:
    """How many rankings this rater could still be handed now (their own live lease included)."""
    query = select(Ranking.id).where(*_open_for(rater_id, utcnow()))
    return session.exec(select(func.count()).select_from(query.subquery())).one()


def current_ranking(*, session: Session, rater_id: int, now=None) -> RankingHandout | None:
    """This rater's live lease on an open ranking they have not ordered, handed out again as it was."""
    now = now or utcnow()
    lease = session.exec(
        select(RankingLease)
        .join(Ranking, col(Ranking.id) == RankingLease.ranking_id)
        .where(
            RankingLease.rater_id == rater_id,
            RankingLease.expires_at > now,
            Ranking.status == ComparisonStatus.open,
            ~_ranked_by(rater_id),
        )
        .order_by(col(RankingLease.id).desc())
    ).first()
    return None if lease is None else handout_in(session, lease.ranking_id, lease.shown)


def next_ranking_priority(*, session: Session, rater_id: int) -> int | None:
    """The priority of the ranking this rater would be handed next (None: none left), read without a lock."""
    return session.exec(
        select(Ranking.priority)
        .where(*_open_for(rater_id, utcnow()))
        .order_by(col(Ranking.priority), col(Ranking.id))
        .limit(1)
    ).first()


def next_ranking_for_rater(*, session: Session, rater: User, rng: random.Random | None = None) -> RankingHandout | None:
    """Commits: the ranking this rater should order now (its lease committed), or None when none is left.

    Their live lease, if any, comes back in the order they were shown. Otherwise the first open
    ranking in (priority, id) order with a place for them is leased, its answers shuffled. On
    PostgreSQL the candidate is locked (others' hand-outs skip it), and its places are counted
    again by a statement of its own, which sees every lease committed before the lock.
    """
    rater_id = stored_id(rater)
    now = utcnow()
    current = current_ranking(session=session, rater_id=rater_id, now=now)
    if current is not None:
        return current
    postgresql = session.get_bind().dialect.name == "postgresql"
    with comparison_lock(session):
        for _ in range(5):
            query = (
                select(Ranking.id)
                .where(*_open_for(rater_id, now))
                .order_by(col(Ranking.priority), col(Ranking.id))
                .limit(1)
            )
            ranking_id = session.exec(
                query.with_for_update(skip_locked=True, of=Ranking) if postgresql else query
            ).first()
            if ranking_id is None and postgresql:
                # Every candidate may be locked for a moment by other raters' hand-outs: wait for the first
                # rather than tell this rater that none is left.
                ranking_id = session.exec(query.with_for_update(of=Ranking)).first()
            if ranking_id is None:
                break
            if (
                postgresql
                and not session.exec(
                    select(Ranking.id).where(Ranking.id == ranking_id, *_open_for(rater_id, now))
                ).first()
            ):
                continue  # taken while the lock was awaited; the next look skips it
            handout = _lease(session, rater_id, ranking_id, now, rng or random)
            session.commit()
            return handout
        session.commit()  # releases the candidates' row locks
    return None


def _lease(session: Session, rater_id: int, ranking_id: int, now, rng) -> RankingHandout:
    ranking = session.get(Ranking, ranking_id)
    assert ranking is not None
    lease = session.exec(
        select(RankingLease).where(RankingLease.ranking_id == ranking_id, RankingLease.rater_id == rater_id)
    ).first()
    expires = now + lease_for(len(ranking.response_ids))
    if lease is None:  # a first hand-out: a fresh order, kept for every later look
        shown = list(ranking.response_ids)
        rng.shuffle(shown)
        lease = RankingLease(ranking_id=ranking_id, rater_id=rater_id, shown=shown, expires_at=expires)
    else:  # their own expired lease (or a skip more than a day old): renewed, in the order they saw it
        lease.expires_at = expires
        lease.skipped_at = None
    session.add(lease)
    session.flush()
    return handout_in(session, ranking_id, lease.shown)


def handout_in(session: Session, ranking_id: int, shown: list[int]) -> RankingHandout:
    ranking = session.get(Ranking, ranking_id)
    assert ranking is not None
    prompt = session.get(Prompt, ranking.prompt_id)
    texts = dict(session.exec(select(Response.id, Response.text).where(col(Response.id).in_(shown))).all())
    return RankingHandout(
        ranking_id=ranking_id, prompt=list(prompt.messages if prompt else []), answers=[texts[r] for r in shown]
    )


def handout_of(*, session: Session, ranking_id: int, rater_id: int) -> RankingHandout:
    """The ranking in the order this rater was shown it (their lease's)."""
    lease = lease_row(session, ranking_id, rater_id)
    if lease is None:
        raise NotFound(f"ranking {ranking_id} was never handed to you")
    return handout_in(session, ranking_id, lease.shown)


def lease_row(session: Session, ranking_id: int, rater_id: int) -> RankingLease | None:
    return session.exec(
        select(RankingLease).where(RankingLease.ranking_id == ranking_id, RankingLease.rater_id == rater_id)
    ).first()


# --- an order --------------------------------------------------------------------------------


def submit_ranking(
    *,
    session: Session,
    rater: User,
    ranking_id: int,
    order: Any,
    rationale: str | None = None,
    idempotency_key: str | None = None,
    kind: VoteKind = VoteKind.human,
    source: str = "human",
) -> RankingResult:
    """Commits: stores a rater's order of a ranking they were handed, as one vote on each of its pairs.

    Under the ranking's lock (PostgreSQL's row lock, SQLite's process lock), like a vote: a repeat
    (this rater's order already stored, or the same idempotency key) returns the stored order; a
    closed ranking, one never handed to this rater, or a late order with no place left is refused.
    """
    rater_id = stored_id(rater)
    check_rationale(rationale)
    with comparison_lock(session):
        query = select(Ranking).where(Ranking.id == ranking_id).execution_options(populate_existing=True)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        ranking = session.exec(query).first()
        if ranking is None:
            session.rollback()
            raise NotFound(f"no ranking {ranking_id}")
        lease = lease_row(session, ranking_id, rater_id)
        if lease is not None:
            session.refresh(lease)
        stored = stored_order(session=session, ranking_id=ranking_id, rater_id=rater_id, key=idempotency_key)
        if stored is not None:
            session.commit()
            return stored
        if lease is None:
            session.rollback()
            raise Conflict(f"ranking {ranking_id} was not handed to you: GET /api/comparisons/next?kinds=ranking first")
        groups = parse_order(order, len(lease.shown))
        if ranking.status is not ComparisonStatus.open:
            session.rollback()
            raise Conflict(f"ranking {ranking_id} is {ranking.status.value}")
        now = utcnow()
        live = as_utc(lease.expires_at) > now and lease.skipped_at is None
        if not live:
            taken = session.exec(
                select(Ranking.vote_count + _others_leases(rater_id, now)).where(Ranking.id == ranking_id)
            ).one()
            if taken >= ranking.target_votes:
                session.rollback()
                raise Conflict(
                    f"ranking {ranking_id} was handed to another rater after you gave it back (or your lease on it "
                    "ran out); it needs no more orders"
                )
        choices = pair_choices(groups, lease.shown)
        position = {rid: n for n, rid in enumerate(lease.shown)}
        pairs = ranking_pairs(session, ranking_id)
        note = (rationale or "").strip() or None
        votes = [
            Vote(
                comparison_id=comp_id,
                rater_id=rater_id,
                choice=choices[(a, b)],
                rationale=note,
                shown_swapped=position[b] < position[a],
                idempotency_key=idempotency_key if n == 0 else None,
                kind=kind,
                source=source,
                ranking_id=ranking_id,
                created_at=now,
            )
            for n, (comp_id, a, b) in enumerate(pairs)
        ]
        closes = ranking.vote_count + 1 >= ranking.target_votes
        count_orders(session, ranking_id, +1, ComparisonStatus.closed if closes else None)
        lease.expires_at = min(as_utc(lease.expires_at), now)
        session.add(lease)
        session.add_all(votes)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            stored = stored_order(session=session, ranking_id=ranking_id, rater_id=rater_id, key=idempotency_key)
            if stored is None:
                raise
            return stored
    return RankingResult(
        ranking_id=ranking_id,
        order=groups,
        vote_ids=[stored_id(v) for v in votes],
        created=True,
        created_at=now,
    )


def ranking_pairs(session: Session, ranking_id: int) -> list[tuple[int, int, int]]:
    """(comparison id, response a, response b) of each pair of the ranking, by comparison id."""
    rows = session.exec(
        select(Comparison.id, Comparison.response_a_id, Comparison.response_b_id)
        .where(Comparison.ranking_id == ranking_id)
        .order_by(col(Comparison.id))
    ).all()
    return [(stored, a, b) for stored, a, b in rows if stored is not None]


def count_orders(session: Session, ranking_id: int, delta: int, status: ComparisonStatus | None) -> None:
    """Add ``delta`` to the order count of the ranking and each of its pairs (in SQL: exact under the
    ranking's lock), setting their status too where one is given."""
    changes: dict[str, Any] = {"status": status} if status is not None else {}
    session.exec(
        sa.update(Comparison)
        .where(col(Comparison.ranking_id) == ranking_id)
        .values(vote_count=Comparison.vote_count + delta, **changes)
        .execution_options(synchronize_session=False)
    )
    session.exec(
        sa.update(Ranking)
        .where(col(Ranking.id) == ranking_id)
        .values(vote_count=Ranking.vote_count + delta, **changes)
        .execution_options(synchronize_session=False)
    )


def stored_order(*, session: Session, ranking_id: int, rater_id: int, key: str | None = None) -> RankingResult | None:
    """This rater's stored order of the ranking (read back from its votes), else the one stored under the
    key; None when neither is. A key used for another judgement is a conflict."""
    if key:
        keyed = session.exec(select(Vote).where(Vote.idempotency_key == key)).first()
        if keyed is not None and (keyed.ranking_id != ranking_id or keyed.rater_id != rater_id):
            raise Conflict("idempotency key already used for a different vote")
    votes = list(
        session.exec(
            select(Vote).where(Vote.ranking_id == ranking_id, Vote.rater_id == rater_id).order_by(col(Vote.id))
        )
    )
    if not votes:
        return None
    lease = lease_row(session, ranking_id, rater_id)
    pairs = {cid: (a, b) for cid, a, b in ranking_pairs(session, ranking_id)}
    said = [(*pairs[v.comparison_id], v.choice) for v in votes]
    shown = lease.shown if lease is not None else sorted({r for a, b, _ in said for r in (a, b)})
    return RankingResult(
        ranking_id=ranking_id,
        order=order_from_choices(said, shown),
        vote_ids=[stored_id(v) for v in votes],
        created=False,
        created_at=votes[0].created_at,
    )


def release_ranking_leases(*, session: Session, rater_id: int) -> int:
    """End this rater's live ranking leases, so their places go to other raters now; how many ended."""
    now = utcnow()
    result = session.exec(
        sa.update(RankingLease)
        .where(col(RankingLease.rater_id) == rater_id, col(RankingLease.expires_at) > now)
        .values(expires_at=now)
    )
    return result.rowcount or 0
