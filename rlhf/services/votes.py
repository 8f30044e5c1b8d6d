"""Recording votes: committed before the next pair is shown, stored once however often sent."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Choice, Comparison, ComparisonStatus, User, Vote, VoteKind, as_utc, stored_id, utcnow
from rlhf.services.comparisons import assignment_for, comparison_lock, lock_comparison, place_is_free

MAX_RATIONALE_CHARS = 5_000


@dataclass
class VoteResult:
    vote: Vote
    created: bool  # False when this was a repeat of a vote already stored


def parse_choice(choice: str | Choice) -> Choice:
    try:
        return Choice(choice)
    except ValueError:
        raise InvalidInput(f"unknown choice {choice!r}; use a, b, tie or both_bad") from None


def record_vote(
    *,
    session: Session,
    rater: User,
    comparison_id: int,
    choice: str | Choice,
    rationale: str | None = None,
    idempotency_key: str | None = None,
    as_shown: bool = True,
    kind: VoteKind = VoteKind.human,
    source: str = "human",
    require_handout: bool = False,
) -> VoteResult:
    """Commits: stores one vote, committed under the comparison's lock.

    The commit is the point: a concurrent duplicate or the vote that fills the target must
    be visible before the lock is released, and a vote is stored before the next pair shows.

    ``choice`` is in the order the rater was shown (``as_shown``); it is stored in terms
    of the comparison's own response_a/response_b. A repeat (same rater and comparison,
    or same idempotency key) returns the stored vote instead of making a second one.
    ``require_handout``: refuse a vote on an open pair this rater was never handed (there
    is no left/right order to read the choice in).

    A *late* vote, from a rater who holds no live lease on the pair (they gave it back on
    leaving the Rate tab, skipped it, let the lease run out, or were never handed it), is
    stored only while its place is free: the pair's votes plus other raters' live leases are
    below its target. Otherwise it is a :class:`Conflict` saying why, and the rater now
    holding the pair keeps their place. A skip is treated like a release: the skipper comes
    back to a pair nobody else needed and still votes. The rater with a live lease is never
    refused this way (a hand-out always leaves room for every live lease), and the check
    costs one query, on late votes only. Gold pairs are open to every rater and hold no
    places, so they take late votes; an arena battle is leased to its own rater alone, so
    its place is always free.
    """
    choice = parse_choice(choice)
    rater_id = stored_id(rater)
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(f"rationale longer than {MAX_RATIONALE_CHARS} characters")
    if rationale and "\x00" in rationale:
        raise InvalidInput("rationale contains a NUL character")
    with comparison_lock(session):
        # Everything below runs under the comparison's row lock (PostgreSQL) or the process
        # lock (SQLite): a concurrent duplicate, or the vote that filled the target, is visible.
        comp = lock_comparison(session=session, comparison_id=comparison_id)
        existing = _existing(session, rater_id, comparison_id, idempotency_key)
        if existing is not None:
            session.commit()
            return VoteResult(existing, created=False)
        assignment = assignment_for(session=session, rater_id=rater_id, comparison_id=comparison_id)
        is_open = comp.status is ComparisonStatus.open and (comp.is_gold or comp.vote_count < comp.target_votes)
        if not is_open:
            session.rollback()
            raise Conflict(f"comparison {comparison_id} is closed")
        if require_handout and assignment is None:
            session.rollback()
            raise Conflict(f"comparison {comparison_id} was not handed to you: GET /api/comparisons/next first")
        now = utcnow()
        lease = assignment if assignment is not None and as_utc(assignment.expires_at) > now else None
        if not (
            lease is not None
            or comp.is_gold
            or place_is_free(session=session, comparison_id=comparison_id, rater_id=rater_id, now=now)
        ):
            session.rollback()
            raise Conflict(_late_vote_refused(comparison_id, had_lease=assignment is not None))
        swapped = bool(assignment and assignment.swapped) if as_shown else False
        vote = Vote(
            comparison_id=comparison_id,
            rater_id=rater_id,
            choice=choice.swapped() if swapped else choice,
            rationale=(rationale or "").strip() or None,
            shown_swapped=swapped,
            idempotency_key=idempotency_key,
            kind=kind,
            source=source,
        )
        session.add(vote)
        if lease is not None:  # the vote ends the lease: its place is filled by the vote itself
            lease.expires_at = now
            session.add(lease)
        # Gold pairs stay open for every rater; a regular one closes when its target is met.
        closes = not comp.is_gold and comp.vote_count + 1 >= comp.target_votes
        comp.vote_count = Comparison.vote_count + 1  # in SQL: exact even if another process counted too
        if closes:
            comp.status = ComparisonStatus.closed
        session.add(comp)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            # A duplicate that got past the lock (another process on SQLite, or the key reused
            # at the same moment on another comparison): the stored one is the vote.
            session.rollback()
            existing = _existing(session, rater_id, comparison_id, idempotency_key)
            if existing is None:
                raise
            return VoteResult(existing, created=False)
    return VoteResult(vote, created=True)


def _late_vote_refused(comparison_id: int, had_lease: bool) -> str:
    if had_lease:
        return (
            f"comparison {comparison_id} was handed to another rater after you gave it back (or your lease "
            "on it ran out); it needs no more votes"
        )
    return f"comparison {comparison_id} needs no more votes: other raters hold every place left in it"


def _existing(session: Session, rater_id: int, comparison_id: int, key: str | None) -> Vote | None:
    """This rater's vote on this comparison, else the vote stored under this key (one query)."""
    mine = sa.and_(col(Vote.rater_id) == rater_id, col(Vote.comparison_id) == comparison_id)
    votes = list(session.exec(select(Vote).where(sa.or_(mine, col(Vote.idempotency_key) == key) if key else mine)))
    for vote in votes:
        if vote.rater_id == rater_id and vote.comparison_id == comparison_id:
            return vote
    if votes:
        raise Conflict("idempotency key already used for a different vote")
    return None
