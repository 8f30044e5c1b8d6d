"""Comparisons: opening them, and handing them to raters one at a time under a lease.

A rater is handed a comparison they have not voted on, whose votes plus live leases of
other raters are below its target; the lease (default five minutes) keeps two raters
from being handed the same pair when it needs one more vote, and an expired lease
simply lets the pair be handed out again.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, func, select

from rlhf.errors import NotFound
from rlhf.models import Assignment, Comparison, ComparisonStatus, Prompt, Response, User, Vote, utcnow

LEASE = timedelta(minutes=5)
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


def open_comparison(*, session: Session, prompt_id: int, response_a_id: int, response_b_id: int,
                    target_votes: int = 1, strategy: str = "random", job_id: int | None = None) -> Comparison:
    comp = Comparison(prompt_id=prompt_id, response_a_id=response_a_id, response_b_id=response_b_id,
                      target_votes=max(1, target_votes), strategy=strategy, job_id=job_id)
    session.add(comp)
    session.flush()
    return comp


def get_comparison(*, session: Session, comparison_id: int) -> Comparison:
    comp = session.get(Comparison, comparison_id)
    if comp is None:
        raise NotFound(f"no comparison {comparison_id}")
    return comp


def _candidates(session: Session, rater_id: int, now, limit: int):
    votes = (select(Vote.comparison_id, func.count().label("n")).group_by(Vote.comparison_id).subquery())
    leases = (select(Assignment.comparison_id, func.count().label("n"))
              .where(Assignment.expires_at > now, Assignment.rater_id != rater_id)
              .group_by(Assignment.comparison_id).subquery())
    mine = select(Vote.comparison_id).where(Vote.rater_id == rater_id)
    query = (select(Comparison)
             .outerjoin(votes, votes.c.comparison_id == Comparison.id)
             .outerjoin(leases, leases.c.comparison_id == Comparison.id)
             .where(Comparison.status == ComparisonStatus.open, Comparison.id.not_in(mine),
                    func.coalesce(votes.c.n, 0) + func.coalesce(leases.c.n, 0) < Comparison.target_votes)
             .order_by(Comparison.id)
             .limit(limit))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Comparison)
    return list(session.exec(query))


def next_for_rater(*, session: Session, rater: User, lease: timedelta = LEASE,
                   rng: random.Random | None = None) -> Handout | None:
    """The comparison this rater should see now, or None when nothing is left for them.

    A rater who reloads gets the same pair back (their live lease), in the same order.
    """
    now = utcnow()
    current = session.exec(
        select(Assignment).join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Assignment.rater_id == rater.id, Assignment.expires_at > now,
               Comparison.status == ComparisonStatus.open,
               Assignment.comparison_id.not_in(select(Vote.comparison_id).where(Vote.rater_id == rater.id)))
        .order_by(Assignment.id.desc())).first()
    if current is not None:
        return _handout(session, session.get(Comparison, current.comparison_id), current.swapped)

    with comparison_lock(session):
        for comp in _candidates(session, rater.id, now, limit=8):
            # The candidate query ran before this row was locked: a lease committed in the
            # meantime is only visible to a new statement, so count again now.
            if _taken(session, comp.id, rater.id, now) >= comp.target_votes:
                continue
            existing = assignment_for(session=session, rater_id=rater.id, comparison_id=comp.id)
            if existing is None:
                existing = Assignment(comparison_id=comp.id, rater_id=rater.id,
                                      swapped=(rng or random).random() < 0.5, expires_at=now + lease)
            else:  # an expired lease of this rater's own: renew it, keep its order
                existing.expires_at = now + lease
            session.add(existing)
            session.commit()
            return _handout(session, comp, existing.swapped)
        session.commit()  # releases the row locks of the candidates passed over
    return None


def _taken(session: Session, comparison_id: int, rater_id: int, now) -> int:
    """Votes plus other raters' live leases on one comparison."""
    votes = session.exec(select(func.count()).select_from(Vote).where(Vote.comparison_id == comparison_id)).one()
    leases = session.exec(select(func.count()).select_from(Assignment).where(
        Assignment.comparison_id == comparison_id, Assignment.rater_id != rater_id,
        Assignment.expires_at > now)).one()
    return votes + leases


def comparison_lock(session: Session):
    """Serialise hand-outs and votes where the database cannot lock rows (SQLite: one process)."""
    return _sqlite_lock if session.bind.dialect.name == "sqlite" else _NullLock()


def lock_comparison(*, session: Session, comparison_id: int) -> Comparison:
    """The comparison row, locked until commit on PostgreSQL, so a vote's count-then-insert is atomic."""
    query = select(Comparison).where(Comparison.id == comparison_id).execution_options(populate_existing=True)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    comp = session.exec(query).first()
    if comp is None:
        raise NotFound(f"no comparison {comparison_id}")
    return comp


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _handout(session: Session, comp: Comparison, swapped: bool) -> Handout:
    prompt = session.get(Prompt, comp.prompt_id)
    ra, rb = session.get(Response, comp.response_a_id), session.get(Response, comp.response_b_id)
    left, right = (rb, ra) if swapped else (ra, rb)
    return Handout(comparison_id=comp.id, prompt=prompt.messages, a=left.text, b=right.text, swapped=swapped)


def assignment_for(*, session: Session, rater_id: int, comparison_id: int) -> Assignment | None:
    return session.exec(select(Assignment).where(Assignment.rater_id == rater_id,
                                                 Assignment.comparison_id == comparison_id)).first()


def open_comparisons(*, session: Session, limit: int | None = None) -> list[Comparison]:
    query = select(Comparison).where(Comparison.status == ComparisonStatus.open).order_by(Comparison.id)
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def count_open(*, session: Session) -> int:
    return session.exec(select(func.count()).select_from(Comparison)
                        .where(Comparison.status == ComparisonStatus.open)).one()


def vote_counts(*, session: Session, comparison_ids: list[int]) -> dict[int, int]:
    if not comparison_ids:
        return {}
    rows = session.exec(select(Vote.comparison_id, func.count()).where(Vote.comparison_id.in_(comparison_ids))
                        .group_by(Vote.comparison_id))
    return dict(rows.all())
