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
from functools import cache
from typing import Any

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


def _not_voted_by(rater_id: int | sa.BindParameter[int]):
    return ~sa.exists().where(col(Vote.comparison_id) == Comparison.id, col(Vote.rater_id) == rater_id)


def _not_skipped_by(rater_id: int | sa.BindParameter[int], skipped_since):
    return ~sa.exists().where(
        col(Skip.comparison_id) == Comparison.id,
        col(Skip.rater_id) == rater_id,
        col(Skip.created_at) > skipped_since,
    )


def rate_queue_for(rater_id: int | sa.BindParameter[int], now, skipped_since=None) -> list:
    """SQL conditions: an open comparison of the rate queue (not an arena battle) that this rater
    has neither voted on nor skipped lately. Whether a place is left in it is apart
    (:func:`others_leases`), as gold pairs hold none. ``skipped_since`` (default ``now`` less
    :data:`SKIP_HIDES`) is for a statement built once with bound parameters."""
    return [
        Comparison.status == ComparisonStatus.open,
        Comparison.source == ComparisonSource.queue,
        _not_voted_by(rater_id),
        _not_skipped_by(rater_id, now - SKIP_HIDES if skipped_since is None else skipped_since),
    ]


# The hand-out and vote statements are built once, with bound parameters (:func:`_params`):
# building a statement and its cache key costs more Python time than PostgreSQL takes to run it.
RATER_PARAM = sa.bindparam("rater_id", type_=sa.Integer)
COMPARISON_PARAM = sa.bindparam("comparison_id", type_=sa.Integer)
NOW_PARAM = sa.bindparam("now", type_=sa.DateTime(timezone=True))
_SKIPPED_SINCE = sa.bindparam("skipped_since", type_=sa.DateTime(timezone=True))


def _params(rater_id: int, now, **more) -> dict:
    return {"rater_id": rater_id, "now": now, "skipped_since": now - SKIP_HIDES, **more}


def others_leases(rater_id: int | sa.BindParameter[int], now):
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
    query = _candidates_query(session.get_bind().dialect.name == "postgresql", gold, wait)
    return session.exec(query, params=_params(rater_id, now, limit=limit)).all()


@cache
def _candidates_query(postgresql: bool, gold: bool, wait: bool):
    mine = aliased(Assignment)
    query = (
        select(Comparison.id, mine.id, mine.swapped)
        .outerjoin(mine, sa.and_(col(mine.comparison_id) == Comparison.id, col(mine.rater_id) == RATER_PARAM))
        .where(*rate_queue_for(RATER_PARAM, NOW_PARAM, _SKIPPED_SINCE), Comparison.is_gold == gold)
    )
    if gold:
        query = query.order_by(func.random())
    else:
        query = query.where(Comparison.vote_count + others_leases(RATER_PARAM, NOW_PARAM) < Comparison.target_votes)
        # The hand-out index's own order: no sort of the open pairs, however many there are.
        query = query.order_by(col(Comparison.priority), col(Comparison.id))
        if postgresql:
            query = query.with_for_update(skip_locked=not wait, of=Comparison)
    return query.limit(sa.bindparam("limit", type_=sa.Integer))


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
    current = _current_lease(session, rater_id, now)
    if current is not None:
        return _handout(session, *current)

    postgresql = session.get_bind().dialect.name == "postgresql"
    with comparison_lock(session):
        # On PostgreSQL a candidate can turn out taken (see below); the next look sees that lease,
        # so looking again finds the pairs behind it rather than telling the rater nothing is left.
        for _ in range(_LOOKS):
            candidates = _candidates(session, rater_id, now, limit=2, gold=False)
            if not candidates and postgresql:
                # Every candidate may be locked for a moment by other raters' hand-outs: wait for
                # the first one rather than tell this rater that nothing is left.
                candidates = _candidates(session, rater_id, now, limit=1, gold=False, wait=True)
            if not candidates:
                break
            for comp_id, own_id, own_swapped in candidates:
                # On PostgreSQL the candidate query's view of the lease table predates this row's lock:
                # a lease committed in the meantime is seen only by a new statement, so the place is
                # counted again by the statement that writes the lease (or by one of its own first).
                if gold_rate > 0 and draw() < gold_rate:
                    if postgresql and not _place_left(session, comp_id, rater_id, now):
                        continue  # gold goes out only while regular work remains
                    gold = _candidates(session, rater_id, now, limit=1, gold=True)
                    if gold:
                        comp_id, own_id, own_swapped = gold[0]
                    handout = _lease(session, rater_id, comp_id, own_id, own_swapped, now + lease, draw)
                else:
                    handout = _lease(
                        session, rater_id, comp_id, own_id, own_swapped, now + lease, draw, if_place_left=postgresql
                    )
                if handout is None:
                    continue
                session.commit()
                return handout
        session.commit()  # releases the row locks of the candidates passed over
    return None


# How often a hand-out looks for candidates when those it found were taken in the meantime
# (each look is a new statement, which sees the leases that took them).
_LOOKS = 5


def _current_lease(session: Session, rater_id: int, now) -> tuple[int, bool] | None:
    """(comparison id, order) of this rater's newest live lease on an open queue pair they have not
    voted on, else None. Two index lookups: their live leases (usually none or one, read through
    ``ix_assignment_rater_live``), then those comparisons by primary key, so the plan cannot start
    from the open pairs, however many there are."""
    live = session.exec(_LIVE_LEASES, params={"rater_id": rater_id, "now": now}).all()
    if not live:
        return None
    usable = set(
        session.exec(
            select(Comparison.id).where(
                col(Comparison.id).in_([comp_id for comp_id, _ in live]),
                Comparison.status == ComparisonStatus.open,
                # An arena battle is leased to its rater too, but it belongs to the Arena tab.
                Comparison.source == ComparisonSource.queue,
                _not_voted_by(rater_id),
            )
        ).all()
    )
    return next(((comp_id, swapped) for comp_id, swapped in live if comp_id in usable), None)


def current_pair(*, session: Session, rater_id: int) -> Handout | None:
    """This rater's live lease on an open queue pair they have not voted on, handed out again as it was."""
    current = _current_lease(session, rater_id, utcnow())
    return None if current is None else _handout(session, *current)


def pairs_before(*, session: Session, rater_id: int, tier: int) -> bool:
    """Whether this rater could be handed a regular pair of a priority tier before ``tier`` (read without
    a lock: it decides only which kind of work goes out first)."""
    now = utcnow()
    query = (
        select(Comparison.id)
        .where(
            *rate_queue_for(rater_id, now),
            Comparison.is_gold == sa.false(),
            col(Comparison.priority) < tier,
            Comparison.vote_count + others_leases(rater_id, now) < Comparison.target_votes,
        )
        .limit(1)
    )
    return session.exec(query).first() is not None


_LIVE_LEASES = (
    select(Assignment.comparison_id, Assignment.swapped)
    .where(Assignment.rater_id == RATER_PARAM, Assignment.expires_at > NOW_PARAM)
    .order_by(col(Assignment.id).desc())
)


def remaining_for_rater(*, session: Session, rater_id: int, count_up_to: int | None = None) -> int:
    """How many pairs this rater could still be handed now (their own live lease included).

    Pairs they voted on or skipped today, and pairs whose places other raters hold, do not
    count; gold pairs count only while regular work remains, as that is when they are handed out.
    With ``count_up_to``, counting stops there: below it the answer is exact, and
    ``count_up_to`` itself means that many or more. Counting all of them visits every open pair
    (a quarter of a second at 55,000), a bounded count only the first ones in hand-out order.
    """
    now = utcnow()

    def count(gold: bool, limit: int | None) -> int:
        query = select(Comparison.id).where(*rate_queue_for(rater_id, now), Comparison.is_gold == gold)
        if not gold:
            query = query.where(Comparison.vote_count + others_leases(rater_id, now) < Comparison.target_votes)
        if limit is not None:
            query = query.order_by(col(Comparison.priority), col(Comparison.id)).limit(limit)
        return session.exec(select(func.count()).select_from(query.subquery())).one()

    regular = count(False, count_up_to)
    if not regular:
        return 0
    if count_up_to is None:
        return regular + count(True, None)
    if regular >= count_up_to:
        return count_up_to
    return regular + count(True, count_up_to - regular)


def _lease(
    session: Session,
    rater_id: int,
    comparison_id: int,
    own_id: int | None,
    own_swapped: bool | None,
    expires_at,
    draw: Callable[[], float],
    if_place_left: bool = False,
) -> Handout | None:
    """Lease the pair to this rater; with ``if_place_left``, only if it still has a place for them
    (counted by the same statement), else None."""
    values: dict[str, Any] = {"expires_at": expires_at, "now": utcnow()}
    if own_id is None:
        swapped = draw() < 0.5
        write: sa.Insert | sa.Update = _NEW_LEASE_IF_FREE if if_place_left else _NEW_LEASE
        values |= {"comparison_id": comparison_id, "rater_id": rater_id, "swapped": swapped}
    else:  # an expired lease of this rater's own: renew it, keep its order
        swapped = bool(own_swapped)
        write = _RENEW_IF_FREE if if_place_left else _RENEW
        # Only the statement's own parameters: an UPDATE would take a column's name as a value to set.
        values |= {"own_id": own_id}
        if if_place_left:
            values |= {"place_comparison_id": comparison_id, "place_rater_id": rater_id}
    written = session.connection().execute(write, values)  # Core: no ORM objects to keep in step
    if if_place_left and not (written.rowcount if own_id is not None else written.first()):
        return None
    return _handout(session, comparison_id, swapped)


def _place_left(session: Session, comparison_id: int, rater_id: int, now) -> bool:
    taken, target = _taken(session, comparison_id, rater_id, now)
    return taken < target


def _taken(session: Session, comparison_id: int, rater_id: int, now) -> tuple[int, int]:
    """(votes plus other raters' live leases, target) of one comparison."""
    return session.exec(_TAKEN, params=_params(rater_id, now, comparison_id=comparison_id)).one()


# The lease writes, built once. "If free": only while votes plus other raters' live leases
# are below the target, in the writing statement itself. ``now`` is when the row is written.
def _place_free(comparison: sa.BindParameter[int], rater: sa.BindParameter[int]):
    return (
        select(Comparison.id)
        .where(
            Comparison.id == comparison,
            Comparison.vote_count + others_leases(rater, sa.bindparam("now", type_=sa.DateTime(timezone=True)))
            < Comparison.target_votes,
        )
        .exists()
    )


_PLACE_FREE = _place_free(COMPARISON_PARAM, RATER_PARAM)
_LEASE_COLUMNS = ["comparison_id", "rater_id", "swapped", "expires_at", "created_at"]
_LEASE_VALUES: list[sa.ColumnElement] = [
    COMPARISON_PARAM,
    RATER_PARAM,
    sa.bindparam("swapped", type_=sa.Boolean),
    sa.bindparam("expires_at", type_=sa.DateTime(timezone=True)),
    NOW_PARAM,
]
_NEW_LEASE = sa.insert(Assignment).from_select(_LEASE_COLUMNS, sa.select(*_LEASE_VALUES))
# RETURNING: the driver reports no row count for an INSERT … SELECT that inserted nothing.
_NEW_LEASE_IF_FREE = (
    sa.insert(Assignment)
    .from_select(_LEASE_COLUMNS, sa.select(*_LEASE_VALUES).where(_PLACE_FREE))
    .returning(col(Assignment.id))
)
_OWN_LEASE = col(Assignment.id) == sa.bindparam("own_id", type_=sa.Integer)
_RENEW = sa.update(Assignment).where(_OWN_LEASE).values(expires_at=sa.bindparam("expires_at"))
# An UPDATE of the lease table reserves its column names (comparison_id, rater_id) for the SET
# clause, so its place check takes its pair and rater under other names.
_RENEW_IF_FREE = (
    sa.update(Assignment)
    .where(
        _OWN_LEASE,
        _place_free(
            sa.bindparam("place_comparison_id", type_=sa.Integer), sa.bindparam("place_rater_id", type_=sa.Integer)
        ),
    )
    .values(expires_at=sa.bindparam("expires_at"))
)

_TAKEN = select(Comparison.vote_count + others_leases(RATER_PARAM, NOW_PARAM), Comparison.target_votes).where(
    Comparison.id == COMPARISON_PARAM
)


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
    messages, text_a, text_b = session.exec(_HANDOUT, params={"comparison_id": comparison_id}).one()
    left, right = (text_b, text_a) if swapped else (text_a, text_b)
    return Handout(comparison_id=comparison_id, prompt=list(messages), a=left, b=right, swapped=swapped)


def _handout_query():
    ra, rb = aliased(Response), aliased(Response)
    return (
        select(Prompt.messages, ra.text, rb.text)
        .join(Comparison, col(Comparison.prompt_id) == Prompt.id)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        .where(Comparison.id == COMPARISON_PARAM)
    )


_HANDOUT = _handout_query()


def assignment_for(*, session: Session, rater_id: int, comparison_id: int) -> Assignment | None:
    return session.exec(
        select(Assignment).where(Assignment.rater_id == rater_id, Assignment.comparison_id == comparison_id)
    ).first()
