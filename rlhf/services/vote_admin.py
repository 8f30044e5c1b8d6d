"""Votes by kind for engineers: counted, listed, and, for the kinds a program cast, removed.

People's votes are never removed here: they are the data the loop exists to keep (a rater
takes back their own vote with an undo). Simulated raters' votes and a reward model's
machine labels are removed whole, by kind, optionally narrowed to one source
(``simulated:shorter``, ``machine:7``), so a demo's stand-in votes can be cleared before
people rate. A vote a training run's snapshot holds stays (the snapshot's hash is over the
votes it names, and must keep verifying); the result says how many stayed for that reason.
Removing simulated votes reopens the pairs they had filled, for people to rate; removing
machine labels puts the pairs back in their place in the queue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from rlhf.errors import InvalidInput
from rlhf.models import (
    PRIORITY_OF_STRATEGY,
    PRIORITY_REGULAR,
    Comparison,
    ComparisonStatus,
    Ranking,
    User,
    Vote,
    VoteKind,
)
from rlhf.services.comparisons import comparison_lock
from rlhf.services.rating import held_by_runs

REMOVABLE = (VoteKind.simulated, VoteKind.machine, VoteKind.judge)
_BATCH = 500  # bounded IN lists, whatever the number of votes


def parse_kind(kind: str | VoteKind) -> VoteKind:
    try:
        return VoteKind(kind)
    except ValueError:
        raise InvalidInput(f"unknown vote kind {kind!r}; use {', '.join(k.value for k in VoteKind)}") from None


def counts_by_kind(*, session: Session) -> dict[str, int]:
    """Votes stored per kind, every kind named (0 where none)."""
    rows = dict(session.exec(select(Vote.kind, func.count()).group_by(Vote.kind)).all())
    return {k.value: rows.get(k, 0) for k in VoteKind}


def list_votes(
    *,
    session: Session,
    kind: str | VoteKind | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Votes newest first, with their rater's name: of one kind and source where given."""
    if not 1 <= limit <= 10_000 or offset < 0:
        raise InvalidInput("limit must be between 1 and 10000, and offset at least 0")
    query = select(Vote, User.name).join(User, col(User.id) == Vote.rater_id)
    if kind is not None:
        query = query.where(Vote.kind == parse_kind(kind))
    if source:
        query = query.where(Vote.source == source)
    rows = session.exec(query.order_by(col(Vote.id).desc()).offset(offset).limit(limit)).all()
    return [
        {
            "id": v.id,
            "comparison_id": v.comparison_id,
            "rater": name,
            "kind": v.kind.value,
            "source": v.source,
            "choice": v.choice.value,
            "strength": v.strength,
            "label_p": v.label_p,
            "created_at": v.created_at,
        }
        for v, name in rows
    ]


@dataclass
class Removed:
    kind: str
    source: str | None
    removed: int  # votes deleted
    kept_for_runs: int  # votes a training run's snapshot holds, left in place
    reopened: int  # comparisons open again for people

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def remove_votes(*, session: Session, kind: str | VoteKind, source: str | None = None) -> Removed:
    """Commits: deletes every vote of this kind (and source), but those a run's snapshot holds."""
    kind = parse_kind(kind)
    if kind not in REMOVABLE:
        raise InvalidInput(
            f"{kind.value} votes are people's and are never removed in bulk; "
            f"removable kinds: {', '.join(k.value for k in REMOVABLE)}"
        )
    with comparison_lock(session):
        query = sa.select(
            col(Vote.id), col(Vote.comparison_id), held_by_runs(), col(Vote.ranking_id), col(Vote.rater_id)
        ).where(col(Vote.kind) == kind)
        if source:
            query = query.where(col(Vote.source) == source)
        rows = session.execute(query).tuples().all()
        # A ranking's order is one judgement: kept whole where a run holds any of its votes.
        held_orders = {(rid, rater) for _, _, held, rid, rater in rows if held and rid is not None}
        doomed = [
            (vid, cid)
            for vid, cid, held, rid, rater in rows
            if not held and (rid is None or (rid, rater) not in held_orders)
        ]
        removed_orders = Counter(
            rid for rid, _ in {(rid, rater) for _, _, held, rid, rater in rows if rid is not None} - held_orders
        )
        per_pair = Counter(cid for _, cid in doomed)
        ids = [vid for vid, _ in doomed]
        for i in range(0, len(ids), _BATCH):
            session.exec(sa.delete(Vote).where(col(Vote.id).in_(ids[i : i + _BATCH])))
        reopened = _restore_pairs(session, kind, per_pair)
        if kind is VoteKind.simulated:
            _restore_rankings(session, removed_orders)
        session.commit()
    return Removed(
        kind=kind.value, source=source, removed=len(ids), kept_for_runs=len(rows) - len(ids), reopened=reopened
    )


def _restore_rankings(session: Session, orders: Counter) -> None:
    """Give rankings back the places the removed orders filled."""
    for ranking_id, n in orders.items():
        ranking = session.get(Ranking, ranking_id, with_for_update=session.get_bind().dialect.name == "postgresql")
        if ranking is None:
            continue
        ranking.vote_count = max(0, ranking.vote_count - n)
        if ranking.vote_count < ranking.target_votes:
            ranking.status = ComparisonStatus.open
        session.add(ranking)


def _restore_pairs(session: Session, kind: VoteKind, per_pair: Counter) -> int:
    """Give the pairs back what the removed votes took: places toward the target (simulated votes),
    or their place in the queue (labels, which never count toward a target). Returns pairs reopened."""
    pair_ids = list(per_pair)
    reopened = 0
    for i in range(0, len(pair_ids), _BATCH):
        query = select(Comparison).where(col(Comparison.id).in_(pair_ids[i : i + _BATCH]))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # a vote cast meanwhile counts under the same row lock
        batch = session.exec(query).all()
        # Labels never filled a target; a pair keeps its late place while another label of this kind remains.
        still_labelled = (
            set()
            if kind is VoteKind.simulated
            else set(
                session.exec(
                    select(Vote.comparison_id).where(
                        col(Vote.comparison_id).in_([c.id for c in batch]), Vote.kind == kind
                    )
                )
            )
        )
        for comp in batch:
            if kind is VoteKind.simulated:
                comp.vote_count = max(0, comp.vote_count - per_pair[comp.id])
                if comp.status is ComparisonStatus.closed and comp.vote_count < comp.target_votes:
                    comp.status = ComparisonStatus.open
                    reopened += 1
            else:
                if comp.id not in still_labelled:
                    comp.priority = PRIORITY_OF_STRATEGY.get(comp.strategy, PRIORITY_REGULAR)
            session.add(comp)
    session.flush()
    return reopened
