"""Preference rows built as a stream: votes read in batches, rows made and written as they come.

At a million votes the rows do not fit comfortably in memory (a row holds its prompt and both
answers), so the export, a snapshot's build and a run's data file never hold them all: the votes
arrive from a server-side cursor in the order the rows are made, the pairs' texts are read per
batch, and each row goes to the file (and into the hash) before the next batch is read.

The order is the one rows have always had, so stored snapshot hashes still verify: per vote
(``aggregate="none"``) in vote order; by majority in comparison order, one row per comparison
(so a batch never splits a comparison's votes); machine labels after the people's rows, by
comparison then vote. With people's votes and models' labels both asked for, a model's label
makes a row only on a comparison no kept person's vote is on; where several models labelled one
comparison (a reward model and judges), the label most likely right (highest ``label_p``) makes it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from rlhf.dataset_rows import PreferenceRow, combined_strength
from rlhf.models import Choice, VoteKind
from rlhf.services.quality import majority
from rlhf.services.soft_labels import single_vote_p, vote_split_p
from rlhf.services.vote_reads import PairTexts, VoteRead, pairs_of

BATCH = 2000  # votes per batch: one pairs query each, a few MB of rows in memory at a time


def stream_votes(session: Session, query: sa.Select) -> Iterator[VoteRead]:
    """Run a select of :data:`~rlhf.services.vote_reads.VOTE_COLUMNS` with a server-side cursor
    (PostgreSQL), in the session's transaction, so only a batch of votes is in memory at a time."""
    # Options on the statement, not the connection: on the connection they would stay and make
    # every later statement of the transaction a cursor too.
    result = session.connection().execute(query, execution_options={"stream_results": True, "yield_per": BATCH})
    for row in result:
        yield VoteRead._make(row)


def iter_rows(
    session: Session,
    human: Iterable[VoteRead],
    machine: Iterable[VoteRead] | None,
    *,
    ties: str,
    aggregate: str,
    reliability: dict[int, float],
    unused: list[int] | None = None,
    judge_ps: dict[int, float] | None = None,
) -> Iterator[PreferenceRow]:
    """Rows of people's votes (``human``: in vote order per vote, by comparison then vote by
    majority), then of models' labels (``machine``: reward models' and judges' votes by comparison
    then vote; None: not asked for). ``judge_ps``: each judge user's earned ``label_p``; a judge's
    vote without one makes no row. ``unused`` collects the ids of the votes that made no row."""
    voted: set[int] = set()
    for batch in _batches(human, whole_comparisons=aggregate == "majority"):
        if machine is not None:
            voted.update(v.comparison_id for v in batch)
        rows = _human_rows(session, batch, ties, aggregate, reliability)
        _note_unused(unused, batch, rows)
        yield from rows
    if machine is None:
        return
    for batch in _batches(machine, whole_comparisons=True):
        kept = [v for v in batch if v.comparison_id not in voted]
        rows = _machine_rows(session, kept, aggregate, judge_ps or {}) if kept else []
        _note_unused(unused, batch, rows)
        yield from rows


def _note_unused(unused: list[int] | None, votes: list[VoteRead], rows: list[PreferenceRow]) -> None:
    if unused is not None:
        held = {i for r in rows for i in r.held_vote_ids}
        unused.extend(v.id for v in votes if v.id not in held)


def _batches(votes: Iterable[VoteRead], *, whole_comparisons: bool) -> Iterator[list[VoteRead]]:
    batch: list[VoteRead] = []
    for v in votes:
        if len(batch) >= BATCH and not (whole_comparisons and v.comparison_id == batch[-1].comparison_id):
            yield batch
            batch = []
        batch.append(v)
    if batch:
        yield batch


class RowHash:
    """:func:`rlhf.dataset_rows.content_hash` of rows fed one at a time: the same digest, without the list."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"[")
        self.rows = 0

    def add(self, r: PreferenceRow) -> None:
        item = {
            "prompt": r.prompt,
            "chosen": r.chosen,
            "rejected": r.rejected,
            **({"vote_id": r.vote_id} if r.vote_id is not None else {"vote_ids": r.vote_ids}),
        }
        text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self._sha.update((b"," if self.rows else b"") + text.encode())
        self.rows += 1

    def hexdigest(self) -> str:
        sha = self._sha.copy()
        sha.update(b"]")
        return sha.hexdigest()


def _pair(pairs: dict[int, PairTexts], comparison_id: int, choice: Choice) -> dict[str, Any]:
    """The fields every row has: the pair in the label's order, and its comparison."""
    pair = pairs[comparison_id]
    chosen, rejected = (pair.text_b, pair.text_a) if choice is Choice.b else (pair.text_a, pair.text_b)
    return {
        "prompt": pair.messages,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "comparison_id": comparison_id,
        "source": pair.source.value,
    }


def _label_p(v: VoteRead, judge_ps: dict[int, float]) -> float | None:
    """How likely a model's label is right: a reward model's calibrated p, a judge's earned p (None: not earned)."""
    if v.kind is VoteKind.judge:
        return judge_ps.get(v.rater_id)
    return float(v.label_p if v.label_p is not None else 1.0)


def _machine_rows(
    session: Session, votes: list[VoteRead], aggregate: str, judge_ps: dict[int, float]
) -> list[PreferenceRow]:
    best: dict[int, tuple[float, VoteRead]] = {}
    for v in sorted(votes, key=lambda v: (v.comparison_id, v.id)):
        p = _label_p(v, judge_ps)
        # A tie from a judge is no preference to learn; the earlier label wins a tie in p.
        if p is None or v.choice not in (Choice.a, Choice.b):
            continue
        if v.comparison_id not in best or p > best[v.comparison_id][0]:
            best[v.comparison_id] = (p, v)
    chosen = [v for _, v in best.values()]
    pairs = pairs_of(session, chosen) if chosen else {}
    rows = []
    for p, v in best.values():
        held = (
            {"vote_id": v.id}
            if aggregate == "none"
            else {"votes": 1, "agreement": 1.0, "vote_ids": [v.id], "rater_ids": [v.rater_id]}
        )
        rows.append(
            PreferenceRow(
                **_pair(pairs, v.comparison_id, v.choice),
                **held,
                rater_id=v.rater_id,
                label_p=round(p, 6),
                rationales=[],
                label_source="judge" if v.kind is VoteKind.judge else "machine",
                machine=v.source,
            )
        )
    return rows


def _human_rows(
    session: Session, votes: list[VoteRead], ties: str, aggregate: str, reliability: dict[int, float]
) -> list[PreferenceRow]:
    """One row per usable vote (``none``), or per comparison by majority: its label's share of the
    votes (``agreement``); a comparison whose top answers are level gives no row. 'Both bad' never
    gives a row, ties only with ``ties="keep"``."""
    pairs = pairs_of(session, votes)

    def usable(choice: Choice) -> bool:
        return choice is not Choice.both_bad and (choice is not Choice.tie or ties == "keep")

    rows = []
    if aggregate == "none":
        for v in votes:
            if usable(v.choice):
                rows.append(
                    PreferenceRow(
                        **_pair(pairs, v.comparison_id, v.choice),
                        vote_id=v.id,
                        rater_id=v.rater_id,
                        label_p=single_vote_p(v.rater_id, reliability),
                        rationales=_rationales([v]),
                        tie=v.choice is Choice.tie if ties == "keep" else None,
                        strength=v.strength if v.choice in (Choice.a, Choice.b) else None,
                    )
                )
        return rows
    grouped: dict[int, list[VoteRead]] = defaultdict(list)
    for v in votes:
        grouped[v.comparison_id].append(v)
    for comp_id in sorted(grouped):
        group = grouped[comp_id]
        label, share = majority([v.choice.value for v in group])
        if label is None or not usable(Choice(label)):
            continue
        rows.append(
            PreferenceRow(
                **_pair(pairs, comp_id, Choice(label)),
                votes=len(group),
                agreement=round(share, 4),
                vote_ids=[v.id for v in group],
                rater_ids=[v.rater_id for v in group],
                label_p=(
                    vote_split_p(label, [v.choice.value for v in group])
                    if len(group) > 1
                    else single_vote_p(group[0].rater_id, reliability)
                ),
                rationales=_rationales(group),
                tie=label == Choice.tie.value if ties == "keep" else None,
                strength=(
                    combined_strength([v.strength for v in group if v.choice.value == label])
                    if label in (Choice.a.value, Choice.b.value)
                    else None
                ),
            )
        )
    return rows


def _rationales(votes: list[VoteRead]) -> list[str]:
    """The raters' reasons behind a row, in vote order (votes without one add nothing)."""
    return [v.rationale for v in votes if v.rationale]
