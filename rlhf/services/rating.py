"""What a rater does besides voting: give a pair back (leave, skip) and take a vote back (undo).

A lease holds a place in a comparison for its rater; a rater who leaves the Rate tab, logs
out or closes the page gives their place back at once instead of holding it for the rest of
the lease. A skip gives it back too, and keeps the pair away from that rater for a day
(:data:`~rlhf.services.comparisons.SKIP_HIDES`). Gold pairs may be skipped like any other:
refusing would tell the rater which pairs are gold. A place given back is given back: a vote
on the pair afterwards (a rater returning to the page, a stale second tab) is a late vote,
stored only while no other rater needs that place (:func:`~rlhf.services.votes.record_vote`).

An undo deletes the vote within a short window, unless a training run's snapshot already
holds it: the snapshot's hash is over the votes it names, and must keep verifying.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import (
    Assignment,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    GenerationJob,
    Ranking,
    RankingLease,
    Skip,
    SnapshotVote,
    User,
    Vote,
    as_utc,
    stored_id,
    utcnow,
)
from rlhf.services import rankings
from rlhf.services.comparisons import (
    LEASE,
    SKIP_HIDES,
    Handout,
    assignment_for,
    comparison_lock,
    current_pair,
    get_comparison,
    handout_of,
    lock_comparison,
    next_for_rater,
    pairs_before,
    rate_queue_for,
)
from rlhf.services.votes import VoteResult, parse_strength, record_vote


def vote_then_next(
    *, session: Session, rater: User, gold_rate: float = 0.0, kinds: tuple[str, ...] = ("pair",), **vote: Any
) -> tuple[VoteResult, "Item | None"]:
    """Commits: the vote (see :func:`~rlhf.services.votes.record_vote`), then this rater's next pair, leased.

    One call per judgement for the Rate tab and ``POST /api/votes?next=true``; the vote is
    committed before the next pair is chosen, so a pair never shows before its predecessor's vote is stored.
    """
    result = record_vote(session=session, rater=rater, **vote)
    return result, next_item(session=session, rater=rater, kinds=kinds, gold_rate=gold_rate)


Item = Handout | rankings.RankingHandout
KINDS = ("pair", "ranking")


def parse_kinds(kinds: str | list[str] | None) -> tuple[str, ...]:
    """What a client takes from the hand-out: ``pair`` (the default, as clients always got) and/or ``ranking``."""
    if kinds is None:
        return ("pair",)
    items = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k and k.strip()]
    unknown = [k for k in items if k not in KINDS]
    if unknown or not items:
        raise InvalidInput(f"unknown kind {unknown[0]!r}; use pair, ranking or both" if unknown else "no kind named")
    return tuple(k for k in KINDS if k in items)


def next_item(
    *, session: Session, rater: User, kinds: tuple[str, ...] = ("pair",), gold_rate: float = 0.0
) -> Item | None:
    """Commits: what this rater should judge now, of the kinds their client takes, leased to them.

    A live lease comes back first (a ranking's, then a pair's). Otherwise a ranking goes out before
    pairs of the same or a later priority tier: one reading of its K answers gives C(K,2) pairs.
    Pairs of an earlier tier (those a reward model is least sure of) still go first.
    """
    rater_id = stored_id(rater)
    if "ranking" in kinds:
        current = rankings.current_ranking(session=session, rater_id=rater_id)
        if current is not None:
            return current
        if "pair" in kinds:
            held = current_pair(session=session, rater_id=rater_id)
            if held is not None:
                return held
        tier = rankings.next_ranking_priority(session=session, rater_id=rater_id)
        if tier is not None and (
            "pair" not in kinds or not pairs_before(session=session, rater_id=rater_id, tier=tier)
        ):
            handout = rankings.next_ranking_for_rater(session=session, rater=rater)
            if handout is not None:
                return handout
    if "pair" not in kinds:
        return None
    return next_for_rater(session=session, rater=rater, gold_rate=gold_rate)


def rank_then_next(
    *, session: Session, rater: User, kinds: tuple[str, ...] = ("pair", "ranking"), gold_rate: float = 0.0, **order: Any
) -> tuple[rankings.RankingResult, Item | None]:
    """Commits: a rater's order of a ranking (:func:`~rlhf.services.rankings.submit_ranking`), then their next item."""
    result = rankings.submit_ranking(session=session, rater=rater, **order)
    return result, next_item(session=session, rater=rater, kinds=kinds, gold_rate=gold_rate)


def _part_of_ranking(vote: Vote) -> str:
    return (
        f"vote {vote.id} is one pair of your order of ranking {vote.ranking_id}: take back the whole order "
        f"(DELETE /api/rankings/{vote.ranking_id}/order)"
    )


def release_leases(*, session: Session, rater_id: int) -> int:
    """End this rater's live leases, so the places they held go to other raters now; how many ended.

    The rater may still vote on such a pair while nobody else has taken its place (a late vote,
    see :func:`~rlhf.services.votes.record_vote`).
    """
    result = session.exec(
        sa.update(Assignment)
        .where(col(Assignment.rater_id) == rater_id, col(Assignment.expires_at) > utcnow())
        .values(expires_at=utcnow())
    )
    released = (result.rowcount or 0) + rankings.release_ranking_leases(session=session, rater_id=rater_id)
    session.flush()
    return released


def skip_comparison(*, session: Session, rater: User, comparison_id: int) -> Skip:
    """Record that this rater passes on the pair and give their place in it back.

    As with a release, a later vote of theirs on it is stored only while its place is still free;
    once the pair has gone to another rater who needs it, the vote is refused (a skip is "not
    for me": the rater it went to keeps it).
    """
    comp = get_comparison(session=session, comparison_id=comparison_id)
    comp_id, rater_id = stored_id(comp), stored_id(rater)
    now = utcnow()
    if (
        session.exec(select(Comparison.id).where(Comparison.id == comp_id, *rate_queue_for(rater_id, now))).first()
        is None
    ):
        earlier = session.exec(
            select(Skip).where(Skip.comparison_id == comp_id, Skip.rater_id == rater_id).order_by(col(Skip.id).desc())
        ).first()
        if earlier is not None and as_utc(earlier.created_at) > now - SKIP_HIDES:
            return earlier  # skipped already (a second click): one skip
        raise Conflict(_why_not_in_queue(session, comp, rater))
    session.exec(
        sa.update(Assignment)
        .where(
            col(Assignment.rater_id) == rater_id,
            col(Assignment.comparison_id) == comp_id,
            col(Assignment.expires_at) > utcnow(),
        )
        .values(expires_at=utcnow())
    )
    skip = Skip(comparison_id=comp_id, rater_id=rater_id)
    session.add(skip)
    session.flush()
    return skip


def _why_not_in_queue(session: Session, comp: Comparison, rater: User) -> str:
    voted = session.exec(select(Vote.id).where(Vote.comparison_id == comp.id, Vote.rater_id == rater.id)).first()
    if voted is not None:
        return f"you already voted on comparison {comp.id}; undo the vote instead of skipping"
    if comp.source is not ComparisonSource.queue:
        return f"comparison {comp.id} is not in the rate queue (its source is {comp.source.value}): nothing to skip"
    return f"comparison {comp.id} is {comp.status.value}: nothing to skip"


def snapshot_holds(*, session: Session, vote_id: int) -> int | None:
    """The id of a training run whose frozen snapshot holds this vote, or None (an index lookup)."""
    return session.exec(
        select(SnapshotVote.run_id).where(SnapshotVote.vote_id == vote_id).order_by(col(SnapshotVote.run_id)).limit(1)
    ).first()


def held_by_runs():
    """A condition on votes: some training run's snapshot holds this one (removing it would break that run)."""
    return sa.exists().where(col(SnapshotVote.vote_id) == Vote.id)


def undo_vote(*, session: Session, rater: User, vote_id: int, window_s: int, lease: timedelta = LEASE) -> Handout:
    """Commits: deletes the rater's own vote and hands the pair back to them, under the comparison's lock.

    Refused after ``window_s`` seconds, and once a run's snapshot holds the vote. The pair is
    reopened (its vote count lowered) and leased to the rater again, in the order they saw it;
    the lease of any pair handed out after the vote ends, so this one is what they see next.
    """
    with comparison_lock(session):
        vote = session.get(Vote, vote_id)
        if vote is None or vote.rater_id != rater.id:
            session.rollback()
            raise NotFound(f"no vote {vote_id} of yours")
        if vote.ranking_id is not None:
            session.rollback()
            raise Conflict(_part_of_ranking(vote))
        comp_id = vote.comparison_id
        comp: Comparison = lock_comparison(session=session, comparison_id=comp_id)
        age = (utcnow() - as_utc(vote.created_at)).total_seconds()
        if age > window_s:
            session.rollback()
            raise Conflict(f"too late to undo: a vote can be taken back within {window_s} s of casting it")
        run_id = snapshot_holds(session=session, vote_id=vote_id)
        if run_id is not None:
            session.rollback()
            raise Conflict(f"training run {run_id} already uses this vote, so it can no longer be undone")
        session.delete(vote)
        comp.vote_count = Comparison.vote_count - 1
        comp.status = ComparisonStatus.open
        session.add(comp)
        release_leases(session=session, rater_id=rater.id)
        assignment = assignment_for(session=session, rater_id=rater.id, comparison_id=comp_id)
        swapped = vote.shown_swapped
        if assignment is None:
            session.add(
                Assignment(comparison_id=comp_id, rater_id=rater.id, swapped=swapped, expires_at=utcnow() + lease)
            )
        else:
            assignment.expires_at = utcnow() + lease
            session.add(assignment)
        session.flush()
        handout = handout_of(session=session, comparison_id=comp_id, swapped=swapped)
        session.commit()
    return handout


def set_strength(*, session: Session, rater: User, vote_id: int, strength: int | str | None, window_s: int) -> Vote:
    """Commits: says (or clears, with None) how much better the rater's own A or B vote found its answer.

    For a rater who voted with a button and then picks the strength: allowed within the undo
    window, as a correction is, and refused once a run's snapshot holds the vote. The update
    itself checks the snapshot again, so a run frozen in between keeps the vote as it froze it.
    """
    vote = session.get(Vote, vote_id)
    if vote is None or vote.rater_id != rater.id:
        session.rollback()
        raise NotFound(f"no vote {vote_id} of yours")
    if vote.ranking_id is not None:
        session.rollback()
        raise Conflict(_part_of_ranking(vote))
    level = parse_strength(strength, vote.choice)
    age = (utcnow() - as_utc(vote.created_at)).total_seconds()
    if age > window_s:
        session.rollback()
        raise Conflict(f"too late to change: a vote's strength can be set within {window_s} s of casting it")
    changed = session.exec(
        sa.update(Vote)
        .where(col(Vote.id) == vote_id, ~held_by_runs())
        .values(strength=level)
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:
        run_id = snapshot_holds(session=session, vote_id=vote_id)
        session.rollback()
        raise Conflict(f"training run {run_id} already uses this vote, so it can no longer be changed")
    session.commit()
    session.refresh(vote)
    return vote


def strength_asked(*, session: Session, comparison_id: int, everywhere: bool) -> bool:
    """Whether the Rate tab asks how much better on this pair: on every pair (``everywhere``, the
    deployment's RLHF_ASK_STRENGTH), or where the generation job that opened it asked."""
    if everywhere:
        return True
    params = session.exec(
        select(GenerationJob.params)
        .join(Comparison, col(Comparison.job_id) == GenerationJob.id)
        .where(Comparison.id == comparison_id)
    ).first()
    return bool(params and params.get("ask_strength"))


# --- rankings: taking an order back, passing on one ----------------------------------------------


def undo_ranking(*, session: Session, rater: User, ranking_id: int, window_s: int) -> rankings.RankingHandout:
    """Commits: deletes the rater's order of the ranking (all its votes) and hands the ranking back to
    them, in the order they saw it. Refused after ``window_s`` seconds, and once a run's snapshot holds
    any of its votes: the snapshot's hash is over them."""
    rater_id = stored_id(rater)
    with comparison_lock(session):
        query = select(Ranking).where(Ranking.id == ranking_id).execution_options(populate_existing=True)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        ranking = session.exec(query).first()
        votes = list(session.exec(select(Vote).where(Vote.ranking_id == ranking_id, Vote.rater_id == rater_id)))
        if ranking is None or not votes:
            session.rollback()
            raise NotFound(f"no order of yours on ranking {ranking_id}")
        age = (utcnow() - as_utc(votes[0].created_at)).total_seconds()
        if age > window_s:
            session.rollback()
            raise Conflict(f"too late to undo: an order can be taken back within {window_s} s of giving it")
        for vote in votes:
            run_id = snapshot_holds(session=session, vote_id=stored_id(vote))
            if run_id is not None:
                session.rollback()
                raise Conflict(f"training run {run_id} already uses this ranking, so it can no longer be undone")
        for vote in votes:
            session.delete(vote)
        rankings.count_orders(session, ranking_id, -1, ComparisonStatus.open)
        release_leases(session=session, rater_id=rater_id)
        lease = rankings.lease_row(session, ranking_id, rater_id)
        assert lease is not None  # an order is stored only through a lease
        lease.expires_at = utcnow() + rankings.lease_for(len(lease.shown))
        lease.skipped_at = None
        session.add(lease)
        session.flush()
        handout = rankings.handout_in(session, ranking_id, lease.shown)
        session.commit()
    return handout


def skip_ranking(*, session: Session, rater: User, ranking_id: int) -> RankingLease:
    """This rater passes on the ranking: their place goes back, and it is not handed to them for a day."""
    rater_id = stored_id(rater)
    rankings.get_ranking(session=session, ranking_id=ranking_id)
    if session.exec(select(Vote.id).where(Vote.ranking_id == ranking_id, Vote.rater_id == rater_id)).first():
        raise Conflict(f"you already ordered ranking {ranking_id}; undo the order instead of skipping")
    lease = rankings.lease_row(session, ranking_id, rater_id)
    if lease is None:
        raise Conflict(f"ranking {ranking_id} was not handed to you: nothing to skip")
    now = utcnow()
    if lease.skipped_at is None or as_utc(lease.skipped_at) <= now - SKIP_HIDES:
        lease.skipped_at = now
    lease.expires_at = min(as_utc(lease.expires_at), now)
    session.add(lease)
    session.flush()
    return lease
