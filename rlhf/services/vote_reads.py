"""Votes, and the prompt and answers of the pairs they are on, read as plain columns.

Building rows needs a handful of columns per vote and per pair; at a million votes an ORM
object per row costs more than the rows themselves, and a look-up per table per batch more
than one joined query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from rlhf.models import Choice, Comparison, ComparisonSource, Prompt, Response, Vote, VoteKind

BATCH = 500  # ids per IN list: well inside every database's parameter limit


class VoteRead(NamedTuple):
    """A vote as the rows need it."""

    id: int
    comparison_id: int
    rater_id: int
    choice: Choice
    rationale: str | None
    source: str
    label_p: float | None
    kind: VoteKind
    strength: int | None


VOTE_COLUMNS = tuple(
    col(c)
    for c in (
        Vote.id,
        Vote.comparison_id,
        Vote.rater_id,
        Vote.choice,
        Vote.rationale,
        Vote.source,
        Vote.label_p,
        Vote.kind,
        Vote.strength,
    )
)


class PairTexts(NamedTuple):
    """What a row shows of its comparison."""

    source: ComparisonSource
    messages: list[dict[str, Any]]
    text_a: str
    text_b: str


def read_votes(session: Session, query: sa.Select) -> list[VoteRead]:
    """Run a select of :data:`VOTE_COLUMNS` (with any joins and filters) in the session's transaction."""
    return [VoteRead._make(row) for row in session.connection().execute(query)]


def votes_by_ids(session: Session, ids: Iterable[int]) -> list[VoteRead]:
    """These votes, in id order."""
    ordered = sorted(set(ids))
    out: list[VoteRead] = []
    for i in range(0, len(ordered), BATCH):
        query = sa.select(*VOTE_COLUMNS).where(col(Vote.id).in_(ordered[i : i + BATCH])).order_by(col(Vote.id))
        out += read_votes(session, query)
    return out


def pairs_of(session: Session, votes: Iterable[VoteRead]) -> dict[int, PairTexts]:
    """The prompt and both answers of every comparison the votes are on, one joined query per batch."""
    ra, rb = aliased(Response), aliased(Response)
    ordered = sorted({v.comparison_id for v in votes})
    out: dict[int, PairTexts] = {}
    for i in range(0, len(ordered), BATCH):
        query = (
            sa.select(col(Comparison.id), col(Comparison.source), col(Prompt.messages), col(ra.text), col(rb.text))
            .join(Prompt, col(Prompt.id) == Comparison.prompt_id)
            .join(ra, col(ra.id) == Comparison.response_a_id)
            .join(rb, col(rb.id) == Comparison.response_b_id)
            .where(col(Comparison.id).in_(ordered[i : i + BATCH]))
        )
        out.update((comp_id, PairTexts(*rest)) for comp_id, *rest in session.connection().execute(query))
    return out
