"""Comparisons: opening them, and handing them to raters one at a time under a lease.

A rater is handed a comparison they have not voted on, whose votes plus live leases of
other raters are below its target; the lease (default five minutes) keeps two raters
from being handed the same pair when it needs one more vote, and an expired lease
simply lets the pair be handed out again. Gold pairs (a known answer, to measure raters)
are mixed in at a set rate and look like any other. Only the queue's comparisons are handed
out here: arena battles belong to the rater who started them, in the Arena tab.

Pairs go out in the order of their ``priority`` (then id), set where a pair is opened or
labelled (``PRIORITY_*`` in :mod:`rlhf.models`): pairs a reward model is unsure of first,
then the rest, and pairs it has machine-labelled (:mod:`rlhf.services.machine_labels`)
last; they stay open for people. One predicate, :func:`rate_queue_for`, says which pairs
a rater may be handed, for the hand-out, the count of what is left, and the skip alike.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from rlhf.errors import NotFound
from rlhf.models import (
    PRIORITY_OF_STRATEGY,
    PRIORITY_REGULAR,
    Assignment,
    Comparison,
    ComparisonSource,
    ComparisonStatus,
    Prompt,
    Response,
    Skip,
    User,
    Vote,
    stored_id,
    utcnow,
)

LEASE = timedelta(minutes=5)
# A pair a rater skipped is not handed to them again for this long (others still get it).
SKIP_HIDES = timedelta(days=1)
# SQLite has one writer at a time; this keeps the check-then-lease of one process atomic
# without relying on SQLite's upgrade-from-read locking, which fails instead of waiting.
_sqlite_lock = threading.Lock()


@dataclass
class Handout:
    """A comparison as one rater sees it: ``a`` is the left response, ``b`` the right."""

    comparison_id: int
    prompt: list[dict]
    a: str
    b: str
    swapped: bool


def open_comparison(
    *,
    session: Session,
    prompt_id: int,
    response_a_id: int,
    response_b_id: int,
    target_votes: int = 1,
    strategy: str = "random",
    job_id: int | None = None,
) -> Comparison:
    comp = Comparison(
        prompt_id=prompt_id,
        response_a_id=response_a_id,
        response_b_id=response_b_id,
        target_votes=max(1, target_votes),
        strategy=strategy,
        job_id=job_id,
        priority=PRIORITY_OF_STRATEGY.get(strategy, PRIORITY_REGULAR),
    )
    session.add(comp)
    session.flush()
    return comp


def get_comparison(*, session: Session, comparison_id: int) -> Comparison:
    comp = session.get(Comparison, comparison_id)
    if comp is None:
        raise NotFound(f"no comparison {comparison_id}")
    return comp


def _not_voted_by(rater_id: int):
    return ~sa.exists().where(col(Vote.comparison_id) == Comparison.id, col(Vote.rater_id) == rater_id)


def _not_skipped_by(rater_id: int, now):
    return ~sa.exists().where(
        col(Skip.comparison_id) == Comparison.id,
        col(Skip.rater_id) == rater_id,
        col(Skip.created_at) > now - SKIP_HIDES,
    )


def rate_queue_for(rater_id: int, now) -> list:
    """SQL conditions: an open comparison of the rate queue (not an arena battle) that this rater
    has neither voted on nor skipped lately. Whether a place is left in it is apart
    (:func:`_others_leases`), as gold pairs hold none."""
    return [
        Comparison.status == ComparisonStatus.open,
        Comparison.source == ComparisonSource.queue,
        _not_voted_by(rater_id),
        _not_skipped_by(rater_id, now),
    ]


def _others_leases(rater_id: int, now):
    """Places other raters hold on the comparison: their live leases, not counting any whose rater
    has voted on it. A vote ends its lease at the vote's time, which can be after a hand-out's
    ``now`` when that hand-out waited on a lock: counted, the vote would hold two places."""
    voted = sa.exists().where(
        col(Vote.comparison_id) == Assignment.comparison_id, col(Vote.rater_id) == Assignment.rater_id
    )
    return (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.comparison_id == Comparison.id,
            Assignment.expires_at > now,
            Assignment.rater_id != rater_id,
            ~voted,
        )
        .correlate(Comparison)
        .scalar_subquery()
    )


def _candidates(session: Session, rater_id: int, now, limit: int, gold: bool, wait: bool = False):
    """(comparison id, this rater's own assignment id or None, its order) for open pairs they may take.

    Regular pairs need room under their target (votes stored plus other raters' live
    leases); gold pairs are open to every rater once, in random order so that no two raters
    meet them in the same sequence.
    """
    mine = aliased(Assignment)
    query = (
        select(Comparison.id, mine.id, mine.swapped)
        .outerjoin(mine, sa.and_(col(mine.comparison_id) == Comparison.id, col(mine.rater_id) == rater_id))
        .where(*rate_queue_for(rater_id, now), Comparison.is_gold == gold)
    )
    if gold:
        query = query.order_by(func.random())
    else:
        query = query.where(Comparison.vote_count + _others_leases(rater_id, now) < Comparison.target_votes)
        # The hand-out index's own order: no sort of the open pairs, however many there are.
        query = query.order_by(col(Comparison.priority), col(Comparison.id))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=not wait, of=Comparison)
    return session.exec(query.limit(limit)).all()


def next_for_rater(
    *, session: Session, rater: User, lease: timedelta = LEASE, rng: random.Random | None = None, gold_rate: float = 0.0
) -> Handout | None:
    """Commits: the comparison this rater should see now (its lease committed), or None when nothing is left.

    The lease is committed under the hand-out lock, so no other rater is handed the same
    place, and the row locks of the candidates passed over are released. A rater who
    reloads gets the same pair back (their live lease), in the same order.
    With ``gold_rate`` > 0, that share of hand-outs is a gold pair the rater has not seen,
    as long as regular work remains (gold alone never keeps a rater busy).
    """
    # The module's shared generator unless the caller brings its own (tests, for a set order).
    draw = rng.random if rng is not None else random.random
    rater_id = stored_id(rater)
    now = utcnow()
    current = session.exec(
        select(Assignment.comparison_id, Assignment.swapped)
        .join(Comparison, col(Comparison.id) == Assignment.comparison_id)
        .where(
            Assignment.rater_id == rater_id,
            Assignment.expires_at > now,
            Comparison.status == ComparisonStatus.open,
            _not_voted_by(rater_id),
            # An arena battle is leased to its rater too, but it belongs to the Arena tab.
            Comparison.source == ComparisonSource.queue,
        )
        .order_by(col(Assignment.id).desc())
        .limit(1)
    ).first()
    if current is not None:
        return _handout(session, *current)

    with comparison_lock(session):
        candidates = _candidates(session, rater_id, now, limit=2, gold=False)
        if not candidates and session.get_bind().dialect.name == "postgresql":
            # Every candidate may be locked for a moment by other raters' hand-outs: wait for
            # the first one rather than tell this rater that nothing is left.
            candidates = _candidates(session, rater_id, now, limit=1, gold=False, wait=True)
        for comp_id, own_id, own_swapped in candidates:
            if session.get_bind().dialect.name == "postgresql":
                # The candidate query's view of the lease table predates this row's lock: a lease
                # committed in the meantime is only visible to a new statement, so count again now.
                taken, target = _taken(session, comp_id, rater_id, now)
                if taken >= target:
                    continue
            if gold_rate > 0 and draw() < gold_rate:
                gold = _candidates(session, rater_id, now, limit=1, gold=True)
                if gold:
                    comp_id, own_id, own_swapped = gold[0]
            handout = _lease(session, rater_id, comp_id, own_id, own_swapped, now + lease, draw)
            session.commit()
            return handout
        session.commit()  # releases the row locks of the candidates passed over
    return None


def remaining_for_rater(*, session: Session, rater_id: int) -> int:
    """How many pairs this rater could still be handed now (their own live lease included).

    Pairs they voted on or skipped today, and pairs whose places other raters hold, do not
    count; gold pairs count only while regular work remains, as that is when they are handed out.
    """
    now = utcnow()

    def count(gold: bool) -> int:
        query = (
            select(func.count())
            .select_from(Comparison)
            .where(*rate_queue_for(rater_id, now), Comparison.is_gold == gold)
        )
        if not gold:
            query = query.where(Comparison.vote_count + _others_leases(rater_id, now) < Comparison.target_votes)
        return session.exec(query).one()

    regular = count(False)
    return regular + count(True) if regular else 0


def _lease(
    session: Session,
    rater_id: int,
    comparison_id: int,
    own_id: int | None,
    own_swapped: bool | None,
    expires_at,
    draw: Callable[[], float],
) -> Handout:
    if own_id is None:
        swapped = draw() < 0.5
        session.add(Assignment(comparison_id=comparison_id, rater_id=rater_id, swapped=swapped, expires_at=expires_at))
    else:  # an expired lease of this rater's own: renew it, keep its order
        swapped = bool(own_swapped)
        session.exec(sa.update(Assignment).where(col(Assignment.id) == own_id).values(expires_at=expires_at))
    return _handout(session, comparison_id, swapped)


def _taken(session: Session, comparison_id: int, rater_id: int, now) -> tuple[int, int]:
    """(votes plus other raters' live leases, target) of one comparison."""
    return session.exec(
        select(Comparison.vote_count + _others_leases(rater_id, now), Comparison.target_votes).where(
            Comparison.id == comparison_id
        )
    ).one()


def place_is_free(*, session: Session, comparison_id: int, rater_id: int, now) -> bool:
    """Whether this rater may still fill a place in the comparison: its votes plus other raters'
    live leases (the hand-out's own count) are below its target.

    For a rater who holds no live lease on it. Call it under the comparison's lock: it is a
    statement of its own, so it sees a lease committed while the lock was awaited.
    """
    taken, target = _taken(session, comparison_id, rater_id, now)
    return taken < target


@contextmanager
def comparison_lock(session: Session):
    """Serialise hand-outs and votes where the database cannot lock rows (SQLite: one process).

    The session takes its pooled connection before the lock, never while holding it: a
    thread holding the lock while it waits for a connection, when every connection belongs
    to a thread waiting for the lock, would stall everyone until the pool times out.
    """
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    session.connection()
    with _sqlite_lock:
        yield


def lock_comparison(*, session: Session, comparison_id: int) -> Comparison:
    """The comparison row, locked until commit on PostgreSQL, so a vote's count-then-insert is atomic."""
    query = select(Comparison).where(Comparison.id == comparison_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    comp = session.exec(query).first()
    if comp is None:
        raise NotFound(f"no comparison {comparison_id}")
    return comp


def handout_of(*, session: Session, comparison_id: int, swapped: bool) -> Handout:
    """The comparison as a rater shown it in this order sees it."""
    return _handout(session, comparison_id, swapped)


def _handout(session: Session, comparison_id: int, swapped: bool) -> Handout:
    ra, rb = aliased(Response), aliased(Response)
    messages, text_a, text_b = session.exec(
        select(Prompt.messages, ra.text, rb.text)
        .join(Comparison, col(Comparison.prompt_id) == Prompt.id)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        .where(Comparison.id == comparison_id)
    ).one()
    left, right = (text_b, text_a) if swapped else (text_a, text_b)
    return Handout(comparison_id=comparison_id, prompt=list(messages), a=left, b=right, swapped=swapped)


def assignment_for(*, session: Session, rater_id: int, comparison_id: int) -> Assignment | None:
    return session.exec(
        select(Assignment).where(Assignment.rater_id == rater_id, Assignment.comparison_id == comparison_id)
    ).first()


def open_comparisons(*, session: Session, limit: int | None = None) -> list[Comparison]:
    query = select(Comparison).where(Comparison.status == ComparisonStatus.open).order_by(col(Comparison.id))
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def vote_counts(*, session: Session, comparison_ids: list[int]) -> dict[int, int]:
    if not comparison_ids:
        return {}
    rows = session.exec(
        select(Vote.comparison_id, func.count())
        .where(col(Vote.comparison_id).in_(comparison_ids))
        .group_by(col(Vote.comparison_id))
    )
    return dict(rows.all())
