"""Recording votes: committed before the next pair is shown, stored once however often sent.

What ``POST /api/votes?next=true`` runs on PostgreSQL, in order, and what each statement is for
(each of the three connection checkouts also runs the pool's pre-ping, ``SELECT 1``):

Authentication (``feedback_ui.auth``, no transaction: one read of committed rows)

1. ``SELECT user JOIN authsession`` by the token's login id: the login is unrevoked and unexpired.

The vote (:func:`record_vote`, one transaction)

2. ``SELECT comparison.id … FOR UPDATE``: the lock. Votes and hand-outs on this pair wait here,
   so the reads below see every vote and lease committed before it was granted.
3. One ``SELECT`` of the pair's status, target and vote count, its votes plus other raters'
   live leases, this rater's vote on it (or the vote stored under the idempotency key), and
   this rater's lease (its order and end): a repeat returns the stored vote; a closed pair,
   a pair never handed out, or a late vote with no place left is refused (409).
4. ``UPDATE assignment SET expires_at = now`` (only with a live lease): the vote ends the
   lease, so its place is not counted twice.
5. ``UPDATE comparison SET vote_count = vote_count + 1`` (and ``status = 'closed'`` at the
   target): the k-rater limit, counted under the lock.
6. ``INSERT INTO vote``: the unique (comparison, rater) pair and the unique key are the last
   guard against a duplicate. ``COMMIT``: stored before the answer and before the next pair
   is chosen; the lock is released.

The next pair (:func:`~rlhf.services.comparisons.next_for_rater`, one transaction)

7. ``SELECT`` of this rater's live leases (index ``ix_assignment_rater_live``): a rater who
   holds one gets that pair again (then one primary-key check that it is still open).
8. ``SELECT … FOR UPDATE SKIP LOCKED LIMIT 2`` over open pairs in ``(priority, id)`` order
   with room under their target: no two raters are handed the same place.
9. ``INSERT INTO assignment … SELECT … WHERE`` votes plus other raters' live leases are still
   below the target (or renew the rater's own expired lease, on the same condition): the
   five-minute lease, written only if the place is still free, as a lease committed after
   statement 8 began is visible only to a new statement. If it was taken, the next candidate.
   A hand-out drawn for gold (``RLHF_GOLD_RATE``) counts the regular candidate's place first
   (gold goes out only while regular work remains) and picks a gold pair: two statements more.
10. ``SELECT`` of the prompt and both responses. ``COMMIT``: the lease is stored, the
    candidates passed over are unlocked.

Statements are built once with bound parameters; building them per call cost more Python
time than PostgreSQL spends running them.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, func, select

from rlhf.errors import Conflict, InvalidInput, NotFound
from rlhf.models import (
    Assignment,
    Choice,
    Comparison,
    ComparisonStatus,
    Strength,
    User,
    Vote,
    VoteKind,
    as_utc,
    stored_id,
    utcnow,
)
from rlhf.services.comparisons import COMPARISON_PARAM, NOW_PARAM, RATER_PARAM, comparison_lock, others_leases

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
    strength: int | Strength | None = None,
) -> VoteResult:
    """Commits: stores one vote, committed under the comparison's lock.

    The commit is the point: a concurrent duplicate or the vote that fills the target must
    be visible before the lock is released, and a vote is stored before the next pair shows.

    ``choice`` is in the order the rater was shown (``as_shown``); it is stored in terms
    of the comparison's own response_a/response_b. A repeat (same rater and comparison,
    or same idempotency key) returns the stored vote instead of making a second one.
    ``require_handout``: refuse a vote on an open pair this rater was never handed (there
    is no left/right order to read the choice in). ``strength``: how much better the chosen
    answer is (:class:`~rlhf.models.Strength`), on an A or B vote only.

    A *late* vote, from a rater who holds no live lease on the pair (they gave it back on
    leaving the Rate tab, skipped it, let the lease run out, or were never handed it), is
    stored only while its place is free: the pair's votes plus other raters' live leases are
    below its target. Otherwise it is a :class:`Conflict` saying why, and the rater now
    holding the pair keeps their place. A skip is treated like a release: the skipper comes
    back to a pair nobody else needed and still votes. The rater with a live lease is never
    refused this way (a hand-out always leaves room for every live lease); the count is read
    with the lease, in the same statement. Gold pairs are open to every rater and hold no
    places, so they take late votes; an arena battle is leased to its own rater alone, so
    its place is always free.
    """
    choice = parse_choice(choice)
    strength = parse_strength(strength, choice)
    rater_id = stored_id(rater)
    check_rationale(rationale)
    with comparison_lock(session):
        # Everything below runs under the comparison's row lock (PostgreSQL) or the process
        # lock (SQLite): a concurrent duplicate, or the vote that filled the target, is visible.
        if session.get_bind().dialect.name == "postgresql":
            locked = session.exec(_LOCK, params={"comparison_id": comparison_id}).first()
            if locked is None:
                raise NotFound(f"no comparison {comparison_id}")
        now = utcnow()
        # A statement of its own after the lock, so it sees what was committed while the lock was awaited.
        state = session.exec(
            _STATE, params={"comparison_id": comparison_id, "rater_id": rater_id, "key": idempotency_key, "now": now}
        ).first()
        if state is None:
            raise NotFound(f"no comparison {comparison_id}")
        status, is_gold, vote_count, target, taken, stored, lease_id, lease_swapped, lease_ends, ranking_id = state
        if ranking_id is not None:
            session.rollback()
            raise Conflict(
                f"comparison {comparison_id} is one pair of ranking {ranking_id}: order the ranking as a whole "
                "(POST /api/rankings)"
            )
        if stored is not None:
            existing = _existing(session, rater_id, comparison_id, idempotency_key)
            if existing is not None:
                session.commit()
                return VoteResult(existing, created=False)
        is_open = status is ComparisonStatus.open and (is_gold or vote_count < target)
        if not is_open:
            session.rollback()
            raise Conflict(f"comparison {comparison_id} is closed")
        if require_handout and lease_id is None:
            session.rollback()
            raise Conflict(f"comparison {comparison_id} was not handed to you: GET /api/comparisons/next first")
        live = lease_id is not None and as_utc(lease_ends) > now
        # A late vote's place: votes plus other raters' live leases below the target (the hand-out's count).
        if not (live or is_gold or taken < target):
            session.rollback()
            raise Conflict(_late_vote_refused(comparison_id, had_lease=lease_id is not None))
        swapped = bool(lease_swapped) if as_shown else False
        vote = Vote(
            comparison_id=comparison_id,
            rater_id=rater_id,
            choice=choice.swapped() if swapped else choice,
            rationale=(rationale or "").strip() or None,
            shown_swapped=swapped,
            idempotency_key=idempotency_key,
            kind=kind,
            source=source,
            strength=strength,
        )
        if live:  # the vote ends the lease: its place is filled by the vote itself
            session.exec(sa.update(Assignment).where(col(Assignment.id) == lease_id).values(expires_at=now))
        # Gold pairs stay open for every rater; a regular one closes when its target is met.
        closes = not is_gold and vote_count + 1 >= target
        counted = {"vote_count": Comparison.vote_count + 1}  # in SQL: exact even if another process counted too
        session.exec(
            sa.update(Comparison)
            .where(col(Comparison.id) == comparison_id)
            .values(**counted, **({"status": ComparisonStatus.closed} if closes else {}))
            .execution_options(synchronize_session=False)
        )
        _expire_loaded(session, comparison_id, lease_id)
        # Added last: inserted by the commit's flush, where a duplicate's IntegrityError is caught.
        session.add(vote)
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


def check_rationale(rationale: str | None) -> None:
    """Refuse a rationale that cannot be stored: too long, or with a NUL character."""
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(f"rationale longer than {MAX_RATIONALE_CHARS} characters")
    if rationale and "\x00" in rationale:
        raise InvalidInput("rationale contains a NUL character")


def parse_strength(strength: int | str | Strength | None, choice: Choice) -> int | None:
    """The stored number for a strength (its number or its name), refused where it means nothing."""
    if strength is None:
        return None
    try:
        if isinstance(strength, bool) or not isinstance(strength, int | str):
            raise ValueError(strength)
        level = Strength[strength] if isinstance(strength, str) and not strength.isdigit() else Strength(int(strength))
    except (KeyError, ValueError):
        names = ", ".join(f"{s.value} ({s.name})" for s in Strength)
        raise InvalidInput(f"strength must be one of {names}, not {strength!r}") from None
    if choice not in (Choice.a, Choice.b):
        raise InvalidInput(f"a strength says how much better A or B is: a {choice.value} vote has none")
    return int(level)


def _expire_loaded(session: Session, comparison_id: int, lease_id: int | None) -> None:
    """The rows were changed by statements: a caller holding them as objects reads them anew."""
    keys: list = [identity_key(Comparison, comparison_id)]
    if lease_id is not None:
        keys.append(identity_key(Assignment, lease_id))
    for key in keys:
        loaded = session.identity_map.get(key)
        if loaded is not None:
            session.expire(loaded)


# Built once (see rlhf.services.comparisons): the lock, then the comparison, this rater's vote
# or the key's, their lease and the places other raters hold, in one statement.
_LOCK = select(Comparison.id).where(Comparison.id == COMPARISON_PARAM).with_for_update()


def _state_query():
    lease = aliased(Assignment)
    mine = sa.and_(col(Vote.rater_id) == RATER_PARAM, col(Vote.comparison_id) == COMPARISON_PARAM)
    stored = (
        select(Vote.id)
        .where(sa.or_(mine, col(Vote.idempotency_key) == sa.bindparam("key", type_=sa.String)))
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            Comparison.status,
            Comparison.is_gold,
            Comparison.vote_count,
            Comparison.target_votes,
            Comparison.vote_count + others_leases(RATER_PARAM, NOW_PARAM),
            stored,
            lease.id,
            lease.swapped,
            lease.expires_at,
            Comparison.ranking_id,
        )
        .outerjoin(lease, sa.and_(col(lease.comparison_id) == Comparison.id, col(lease.rater_id) == RATER_PARAM))
        .where(Comparison.id == COMPARISON_PARAM)
    )


_STATE = _state_query()


def _late_vote_refused(comparison_id: int, had_lease: bool) -> str:
    if had_lease:
        return (
            f"comparison {comparison_id} was handed to another rater after you gave it back (or your lease "
            "on it ran out); it needs no more votes"
        )
    return f"comparison {comparison_id} needs no more votes: other raters hold every place left in it"


def votes_cast(*, session: Session, rater_id: int) -> int:
    """How many votes this rater has stored (one index count)."""
    return session.exec(select(func.count()).select_from(Vote).where(Vote.rater_id == rater_id)).one()


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
