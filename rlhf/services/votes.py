"""Recording votes: committed before the next pair is shown, stored once however often sent."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, func, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Choice, ComparisonStatus, User, Vote
from rlhf.services.comparisons import assignment_for, comparison_lock, lock_comparison

MAX_RATIONALE_CHARS = 5_000
_SWAP = {Choice.a: Choice.b, Choice.b: Choice.a, Choice.tie: Choice.tie, Choice.both_bad: Choice.both_bad}


@dataclass
class VoteResult:
    vote: Vote
    created: bool  # False when this was a repeat of a vote already stored


def parse_choice(choice: str | Choice) -> Choice:
    try:
        return Choice(choice)
    except ValueError:
        raise InvalidInput(f"unknown choice {choice!r}; use a, b, tie or both_bad") from None


def record_vote(*, session: Session, rater: User, comparison_id: int, choice: str | Choice,
                rationale: str | None = None, idempotency_key: str | None = None,
                as_shown: bool = True, source: str = "human") -> VoteResult:
    """Store one vote and commit it.

    ``choice`` is in the order the rater was shown (``as_shown``); it is stored in terms
    of the comparison's own response_a/response_b. A repeat (same rater and comparison,
    or same idempotency key) returns the stored vote instead of making a second one.
    """
    choice = parse_choice(choice)
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(f"rationale longer than {MAX_RATIONALE_CHARS} characters")
    if rationale and "\x00" in rationale:
        raise InvalidInput("rationale contains a NUL character")
    existing = _existing(session, rater.id, comparison_id, idempotency_key)
    if existing is not None:
        return VoteResult(existing, created=False)
    with comparison_lock(session):
        comp = lock_comparison(session=session, comparison_id=comparison_id)
        # Under the lock: a concurrent duplicate or the vote that filled the target is visible now.
        existing = _existing(session, rater.id, comparison_id, idempotency_key)
        if existing is not None:
            session.commit()
            return VoteResult(existing, created=False)
        n_votes = session.exec(select(func.count()).select_from(Vote).where(Vote.comparison_id == comp.id)).one()
        if comp.status is not ComparisonStatus.open or n_votes >= comp.target_votes:
            session.rollback()
            raise Conflict(f"comparison {comparison_id} is closed")
        assignment = assignment_for(session=session, rater_id=rater.id, comparison_id=comparison_id)
        swapped = bool(assignment and assignment.swapped) if as_shown else False
        vote = Vote(comparison_id=comparison_id, rater_id=rater.id, choice=_SWAP[choice] if swapped else choice,
                    rationale=(rationale or "").strip() or None, shown_swapped=swapped,
                    idempotency_key=idempotency_key, source=source)
        try:
            with session.begin_nested():
                session.add(vote)
                session.flush()
        except sa.exc.IntegrityError:
            # A duplicate that slipped past (another process on SQLite): the stored one is the vote.
            session.rollback()
            existing = _existing(session, rater.id, comparison_id, idempotency_key)
            if existing is None:
                raise
            return VoteResult(existing, created=False)
        if n_votes + 1 >= comp.target_votes:
            comp.status = ComparisonStatus.closed
            session.add(comp)
        session.commit()
    return VoteResult(vote, created=True)


def _existing(session: Session, rater_id: int, comparison_id: int, key: str | None) -> Vote | None:
    vote = session.exec(select(Vote).where(Vote.rater_id == rater_id, Vote.comparison_id == comparison_id)).first()
    if vote is None and key:
        vote = session.exec(select(Vote).where(Vote.idempotency_key == key)).first()
        if vote is not None and (vote.rater_id != rater_id or vote.comparison_id != comparison_id):
            raise Conflict("idempotency key already used for a different vote")
    return vote
