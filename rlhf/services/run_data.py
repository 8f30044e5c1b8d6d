"""A run's preference data: frozen when the run is created, built into rows by its worker.

Creating a run must answer in seconds whatever the number of votes, so the request does only
what fixes the data:

- the raters' quality is measured once (who is flagged, everyone's reliability), and kept on
  the snapshot, so ``label_p`` is the same whenever the run starts;
- the votes are frozen by one ``INSERT INTO snapshot_vote … SELECT``: exactly the votes
  committed when it runs, gold pairs and left-out raters excepted. From then on undo and bulk
  removal refuse them (an index lookup), so nothing can change under the run;
- a count says whether any of them can make a row at all, so a run with nothing to train on
  is refused at once.

The worker then streams the rows (:func:`write_run_rows`): it writes the trainer's data file,
hashes the rows, stores the hash, the row count and the label noise on the snapshot, and lets
go of the frozen votes that made no row (a tie dropped, a level majority), so a run holds
exactly the votes it trains on. A run built before is checked against its stored hash instead.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Algorithm, Choice, SnapshotVote, TrainingRun, Vote, stored_id
from rlhf.services.dataset import (
    HASH_MISMATCH,
    LabelsArg,
    NoiseTally,
    check_choices,
    earned_judge_ps,
    eligible_query,
    listed_rows,
    no_usable_votes,
    of_kinds,
    stream_rows,
)
from rlhf.services.preference_stream import RowHash
from rlhf.services.quality import measure
from rlhf.services.snapshots import PreferenceSnapshot, Snapshot
from rlhf.services.soft_labels import rater_reliability
from rlhf.services.vote_kinds import model_label
from rlhf.services.vote_reads import VOTE_COLUMNS, votes_by_ids

_RELEASE_BATCH = 500


def freeze_votes(
    *,
    session: Session,
    run: TrainingRun,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
) -> PreferenceSnapshot:
    """Freeze the votes the run may train on (in the caller's transaction) and return its snapshot,
    rows not built yet. Raises :class:`InvalidInput` when none of them could make a row."""
    checked_ties, checked_aggregate, kinds = check_choices(ties, aggregate, labels)
    run_id = stored_id(run)
    measured = measure(session=session)
    query, info = eligible_query(session=session, exclude_flagged=exclude_flagged, sources=sources, measured=measured)
    reliability = rater_reliability(session=session, measured=measured)
    judge_ps = earned_judge_ps(session, kinds, reliability)
    ids = of_kinds(query, kinds, judge_ps.keys()).with_only_columns(sa.literal(run_id), col(Vote.id))
    frozen = session.exec(sa.insert(SnapshotVote).from_select(["run_id", "vote_id"], ids)).rowcount
    if frozen < 0:  # a driver that does not report it (SQLite's, for INSERT … SELECT)
        frozen = session.exec(
            select(func.count()).select_from(SnapshotVote).where(col(SnapshotVote.run_id) == run_id)
        ).one()
    needed = 2 if run.algorithm is Algorithm.reward else 1
    rows = _rows_at_least(session, run_id, checked_ties, checked_aggregate, needed)
    if rows == 0:
        raise no_usable_votes(kinds)
    if rows < needed:
        raise InvalidInput("a reward model needs at least 2 usable votes (some are held out for accuracy)")
    return PreferenceSnapshot(
        votes=frozen,
        rows=0,
        hash=None,
        ties=checked_ties,
        aggregate=checked_aggregate,
        rater_reliability=reliability,
        labels=kinds,
        judge_label_p=judge_ps,
        **info,
    )


def _rows_at_least(session: Session, run_id: int, ties: str, aggregate: str, needed: int) -> int:
    """How many rows the frozen votes can make, counted up to ``needed``: usable votes (per vote) or
    the comparisons they are on (by majority). A comparison whose majority turns out level makes
    none, which only building the rows finds out."""
    usable = [Choice.a, Choice.b] + ([Choice.tie] if ties == "keep" else [])
    key = col(Vote.comparison_id) if aggregate == "majority" else col(Vote.id)
    found = (
        select(key)
        .select_from(SnapshotVote)
        .join(Vote, col(Vote.id) == SnapshotVote.vote_id)
        .where(col(SnapshotVote.run_id) == run_id, sa.or_(col(Vote.choice).in_(usable), model_label()))
        .distinct()
        .limit(needed)
        .subquery()
    )
    return session.exec(select(func.count()).select_from(found)).one()


def held_votes_query(run_id: int) -> sa.Select:
    """The votes a run holds, as :data:`~rlhf.services.vote_reads.VOTE_COLUMNS`."""
    return (
        sa.select(*VOTE_COLUMNS)
        .join(SnapshotVote, col(SnapshotVote.vote_id) == Vote.id)
        .where(col(SnapshotVote.run_id) == run_id)
    )


def write_run_rows(
    *,
    session: Session,
    run: TrainingRun,
    path: Path | None,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> PreferenceSnapshot:
    """Stream the run's rows into ``path`` (JSONL, each row through ``shape`` if given; None: only
    build or check them), and return its snapshot, built.

    Commits: the first time, it stores the snapshot's hash, rows and label noise on the run and
    releases the frozen votes that made no row. Afterwards it checks the rows against the stored
    hash and raises :class:`Conflict` on a mismatch. No file is left under ``path`` on any error.
    """
    snapshot = Snapshot.of(run)
    if not isinstance(snapshot, PreferenceSnapshot):
        raise InvalidInput("the run's snapshot holds no preference rows")
    run_id = stored_id(run)
    built = snapshot.hash is not None
    if session.get_bind().dialect.name == "postgresql":
        # The freeze may have added a million rows a moment ago, before autovacuum had a look:
        # without fresh statistics the planner reads them as one row and joins them one by one.
        session.connection().execute(sa.text("ANALYZE snapshot_vote"))
    hasher, noise, machine_rows, judge_rows = RowHash(), NoiseTally(), 0, 0
    unused: list[int] = []
    choices: dict[str, Any] = {
        "kinds": snapshot.labels,
        "ties": snapshot.ties,
        "aggregate": snapshot.aggregate,
        "reliability": snapshot.rater_reliability,
        "judge_ps": snapshot.judge_label_p,
    }
    if snapshot.vote_ids:  # stored before snapshot_vote: the JSON lists its votes
        rows = listed_rows(session, votes_by_ids(session, snapshot.vote_ids), **choices)
    else:
        rows = stream_rows(session, held_votes_query(run_id), unused=None if built else unused, **choices)
    tmp = path.with_name(f".{path.name}.tmp") if path is not None else None
    try:
        with tmp.open("w", encoding="utf-8") if tmp is not None else contextlib.nullcontext() as fh:
            for r in rows:
                hasher.add(r)
                noise.add(r)
                machine_rows += r.label_source == "machine"
                judge_rows += r.label_source == "judge"
                if fh is not None:
                    data = r.model_dump()
                    fh.write(json.dumps(shape(data) if shape else data, ensure_ascii=False) + "\n")
        if built:
            if hasher.hexdigest() != snapshot.hash:
                raise Conflict(HASH_MISMATCH)
        else:
            if hasher.rows == 0:
                raise no_usable_votes(snapshot.labels)
            if run.algorithm is Algorithm.reward and hasher.rows < 2:
                raise InvalidInput("a reward model needs at least 2 usable votes (some are held out for accuracy)")
            snapshot = _store_built(session, run, snapshot, hasher, noise, (machine_rows, judge_rows), unused)
        if tmp is not None and path is not None:
            tmp.replace(path)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return snapshot


def _store_built(
    session: Session,
    run: TrainingRun,
    snapshot: PreferenceSnapshot,
    hasher: RowHash,
    noise: NoiseTally,
    model_rows: tuple[int, int],
    unused: list[int],
) -> PreferenceSnapshot:
    run_id = stored_id(run)
    for i in range(0, len(unused), _RELEASE_BATCH):
        session.exec(
            sa.delete(SnapshotVote).where(
                col(SnapshotVote.run_id) == run_id, col(SnapshotVote.vote_id).in_(unused[i : i + _RELEASE_BATCH])
            )
        )
    built = snapshot.model_copy(
        update={
            "votes": (snapshot.votes or 0) - len(unused),
            "rows": hasher.rows,
            "hash": hasher.hexdigest(),
            "label_noise": noise.value(),
            "machine_rows": model_rows[0],
            "judge_rows": model_rows[1],
        }
    )
    session.exec(
        sa.update(TrainingRun)
        .where(col(TrainingRun.id) == run_id)
        .values(snapshot=built.for_storage(), snapshot_hash=built.hash)
    )
    session.commit()
    session.refresh(run)
    return built


def build_snapshot(*, session: Session, run: TrainingRun) -> PreferenceSnapshot:
    """Commits: the run's snapshot with its rows built (as its worker does first), without a data file."""
    return write_run_rows(session=session, run=run, path=None)
