"""Preference data: votes turned into TRL's conversational format, snapshots and export.

A row (:class:`~rlhf.dataset_rows.PreferenceRow`) is ``{"prompt": [messages], "chosen": [assistant
message], "rejected": [...]}`` plus provenance and ``rationales`` (what the raters wrote, a list per
row); it is built once here, and the export, the snapshot hash and the trainer's data file all
take it as it is written. By default there is one row per comparison, labelled by the majority
of its votes, with that label's share (``agreement``); ``aggregate="none"`` gives one
row per vote instead. Gold pairs' votes, raters excluded by an engineer and raters
flagged by their gold accuracy are left out.

Every row carries ``label_p``, the probability that its label is right (from the vote
split, or the rater's measured reliability: see :mod:`rlhf.services.soft_labels`); DPO
and the reward model train each pair towards it.

``labels`` chooses whose votes make rows, a comma list of ``human`` (the default: people's and
simulated raters' votes), ``machine`` (a reward model's labels, see
:mod:`rlhf.services.machine_labels`) and ``judge`` (AI judges' votes, see
:mod:`rlhf.services.judges`), or ``all``; ``both`` is ``human,machine``. A person's vote always
wins its comparison; of the models' labels on a comparison no person voted on, the one with the
highest ``label_p`` makes the row. A reward model's ``label_p`` is its calibrated probability; a
judge's is what it earned against people (:mod:`rlhf.services.judge_audit`), frozen in the
snapshot, and a judge that has earned none makes no rows. Such rows carry ``label_source``
(``machine`` or ``judge``) and the vote's source.

A *snapshot* (:class:`~rlhf.services.snapshots.PreferenceSnapshot`) freezes which votes a
run trains on (their ids), the choices above, the
raters' reliability at that moment (so ``label_p`` is the same whenever the run starts),
and a hash of the rows' content, so a checkpoint can always say exactly which votes made
it. With overlap, it also records how often a label is flipped (``label_noise``), as a
figure: per-pair ``label_p`` already carries that doubt into training. A run's snapshot is
frozen in the request that creates the run and built into rows by its worker
(:mod:`rlhf.services.run_data`); rows are always made as a stream
(:mod:`rlhf.services.preference_stream`), so the export holds a batch at a time.

A pair of a ranking (K answers ordered in one judgement) also carries ``ranking_id`` and
``ranking_size`` (K), looked up once per batch of rows (:func:`with_rankings`), so training
can weigh a ranking as one judgement and hold it out whole; every other row is as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session, col

from rlhf.dataset_rows import PreferenceRow, content_hash, strength_margin
from rlhf.errors import Conflict, InvalidInput, RLHFError
from rlhf.models import Comparison, ComparisonSource, Ranking, Vote
from rlhf.models import VoteKind as StoredKind
from rlhf.services.export_files import write_stream
from rlhf.services.judge_audit import judge_label_ps
from rlhf.services.preference_stream import iter_rows, stream_votes
from rlhf.services.quality import Quality, left_out_raters, measure
from rlhf.services.snapshots import Aggregate, PreferenceSnapshot, Snapshot, Ties, VoteKind, parse_labels
from rlhf.services.soft_labels import rater_reliability
from rlhf.services.vote_kinds import PEOPLE, human_vote, judge_vote, machine_vote
from rlhf.services.vote_reads import VOTE_COLUMNS, VoteRead, read_votes, votes_by_ids
from rlhf.settings import get_settings

__all__ = [
    "Snapshot",
    "PreferenceSnapshot",
    "content_hash",
    "eligible_votes",
    "export",
    "label_noise",
    "parse_sources",
    "preference_rows",
    "snapshot_rows",
    "take_snapshot",
    "write_rows",
]
LabelsArg = str | Iterable[str]  # a name (human, machine, both) or vote kinds: see rlhf.services.snapshots

TIES: tuple[Ties, ...] = ("drop", "keep")
AGGREGATES: tuple[Aggregate, ...] = ("majority", "none")


def check_choices(
    ties: str, aggregate: str, labels: LabelsArg = "human"
) -> tuple[Ties, Aggregate, frozenset[VoteKind]]:
    """The choices as checked values: ``ties``, ``aggregate`` and the vote kinds ``labels`` names."""
    kinds = parse_labels(labels)
    if ties in TIES and aggregate in AGGREGATES:  # tested this way round so mypy narrows both
        return ties, aggregate, kinds
    if ties not in TIES:
        raise InvalidInput(f"ties must be one of {', '.join(TIES)}")
    raise InvalidInput(f"aggregate must be one of {', '.join(AGGREGATES)}")


def parse_sources(sources: str | list[str] | None) -> list[str] | None:
    """``queue,arena,written`` (or a list) as checked source names; None or empty means all of them."""
    if sources is None:
        return None
    items = [x.strip() for x in (sources.split(",") if isinstance(sources, str) else sources) if x and x.strip()]
    known = [s.value for s in ComparisonSource]
    for item in items:
        if item not in known:
            raise InvalidInput(f"unknown source {item!r}; use {', '.join(known)}")
    return items or None


def eligible_query(*, session: Session, exclude_flagged: bool, sources: list[str] | None, measured: Quality | None):
    """(the select of every vote data may be built from now, what it leaves out): gold pairs' votes,
    raters excluded by an engineer and (``exclude_flagged``) raters whose gold accuracy flagged them."""
    left_out = left_out_raters(session=session, exclude_flagged=exclude_flagged, measured=measured)
    skip = sorted(set(left_out["excluded"]) | set(left_out["flagged"]))
    query = (
        sa.select(*VOTE_COLUMNS)
        .join(Comparison, col(Comparison.id) == Vote.comparison_id)
        .where(~col(Comparison.is_gold))
    )
    sources = parse_sources(sources)
    if sources:
        query = query.where(col(Comparison.source).in_([ComparisonSource(s) for s in sources]))
    if skip:
        query = query.where(col(Vote.rater_id).not_in(skip))
    info: dict[str, Any] = {"left_out_raters": left_out, "exclude_flagged": exclude_flagged, "gold_left_out": True}
    if sources:
        info["sources"] = sources
    return query, info


def of_kinds(query: sa.Select, kinds: frozenset[str], judges: Iterable[int] = ()) -> sa.Select:
    """Only the votes whose kinds ``labels`` asked for: people's (and simulated raters'), machine labels,
    judges' labels (only of the judge users in ``judges``: those that earned a label_p), or a mix."""
    wanted = []
    if "human" in kinds:
        wanted.append(human_vote())
    if "machine" in kinds:
        wanted.append(machine_vote())
    if "judge" in kinds:
        wanted.append(sa.and_(judge_vote(), col(Vote.rater_id).in_(sorted(judges))))
    return query.where(wanted[0] if len(wanted) == 1 else sa.or_(*wanted))


def earned_judge_ps(
    session: Session, kinds: frozenset[str], reliability: dict[int, float] | None = None
) -> dict[int, float]:
    """Each judge user's label_p as earned now (none unless judges' labels were asked for); ``reliability``:
    people's, where the caller has measured it already (measuring reads every vote)."""
    if "judge" not in kinds:
        return {}
    return judge_label_ps(session=session, min_overlap=get_settings().judge_min_overlap, reliability=reliability)


def stream_rows(
    session: Session,
    query: sa.Select,
    *,
    kinds: frozenset[str],
    ties: str,
    aggregate: str,
    reliability,
    unused=None,
    judge_ps: dict[int, float] | None = None,
) -> Iterator[PreferenceRow]:
    """The rows of the votes ``query`` selects (:data:`VOTE_COLUMNS`, any joins and filters), streamed
    in the order rows have always had (:mod:`rlhf.services.preference_stream`)."""
    human = query.where(human_vote()).order_by(
        *((col(Vote.comparison_id), col(Vote.id)) if aggregate == "majority" else (col(Vote.id),))
    )
    models = [k for k in ("machine", "judge") if k in kinds]
    labelled = of_kinds(query, frozenset(models), judges=(judge_ps or {}).keys()) if models else None
    rows = iter_rows(
        session,
        stream_votes(session, human) if "human" in kinds else (),
        stream_votes(session, labelled.order_by(col(Vote.comparison_id), col(Vote.id)))
        if labelled is not None
        else None,
        ties=ties,
        aggregate=aggregate,
        reliability=reliability,
        unused=unused,
        judge_ps=judge_ps,
    )
    return with_rankings(session, rows)


def listed_rows(
    session: Session,
    votes: list[VoteRead],
    *,
    kinds: frozenset[str],
    ties: str,
    aggregate: str,
    reliability,
    judge_ps: dict[int, float] | None = None,
) -> Iterator[PreferenceRow]:
    """As :func:`stream_rows`, for votes already read (a snapshot that lists its vote ids)."""
    human = [v for v in votes if v.kind in PEOPLE] if "human" in kinds else []
    if aggregate == "majority":
        human.sort(key=lambda v: (v.comparison_id, v.id))
    wanted = {StoredKind(k) for k in kinds if k in ("machine", "judge")}
    labelled = sorted((v for v in votes if v.kind in wanted), key=lambda v: (v.comparison_id, v.id))
    rows = iter_rows(
        session,
        human,
        labelled if wanted else None,
        ties=ties,
        aggregate=aggregate,
        reliability=reliability,
        judge_ps=judge_ps,
    )
    return with_rankings(session, rows)


RANKING_BATCH = 500  # rows per look-up of their rankings: one query, an IN list well inside every limit


def with_rankings(session: Session, rows: Iterable[PreferenceRow]) -> Iterator[PreferenceRow]:
    """The rows in the same order, each pair of a ranking given its ``ranking_id`` and ``ranking_size``.

    Rows come in batches; a batch with a ranking's pair costs one joined query for all of them,
    and a batch without one (every row whose source is not ``ranking``) costs nothing.
    """
    ranked = ComparisonSource.ranking.value
    it = iter(rows)
    while batch := list(islice(it, RANKING_BATCH)):
        wanted = sorted({r.comparison_id for r in batch if r.source == ranked})
        of_pair = _rankings_of(session, wanted) if wanted else {}
        for r in batch:
            found = of_pair.get(r.comparison_id) if r.source == ranked else None
            yield r if found is None else r.model_copy(update={"ranking_id": found[0], "ranking_size": found[1]})


def _rankings_of(session: Session, comparison_ids: list[int]) -> dict[int, tuple[int, int]]:
    """comparison id -> (its ranking's id, the ranking's number of answers K), for these comparisons."""
    query = (
        sa.select(col(Comparison.id), col(Ranking.id), col(Ranking.response_ids))
        .join(Ranking, col(Ranking.id) == Comparison.ranking_id)
        .where(col(Comparison.id).in_(comparison_ids))
    )
    rows = session.connection().execute(query)
    return {cid: (rid, len(answers)) for cid, rid, answers in rows if cid is not None and rid is not None}


def eligible_votes(
    *,
    session: Session,
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
    measured: Quality | None = None,
) -> tuple[list[VoteRead], dict[str, Any]]:
    """The votes data may be built from now, in vote order, and what was left out: gold pairs' votes (they
    measure raters), raters excluded by an engineer, and (``exclude_flagged``) raters whose
    gold accuracy flagged them. ``sources``: only comparisons of these sources (queue, arena,
    written); all by default. ``labels``: people's votes, machine labels or both (see above).
    ``measured``: the raters' quality if the caller has it already (else measured here)."""
    _, _, kinds = check_choices("drop", "majority", labels)
    query, info = eligible_query(session=session, exclude_flagged=exclude_flagged, sources=sources, measured=measured)
    judges = earned_judge_ps(session, kinds).keys()
    return read_votes(session, of_kinds(query, kinds, judges).order_by(col(Vote.id))), info


def preference_rows(
    *,
    session: Session,
    vote_ids: list[int] | None = None,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    reliability: dict[int, float] | None = None,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
) -> list[dict[str, Any]]:
    """Rows from the given votes, or else from every eligible vote (see :func:`eligible_votes`), as written.

    ``label_p`` of single votes uses ``reliability``, else the raters' reliability now.
    """
    return _written(
        list(
            _preference_records(
                session=session,
                vote_ids=vote_ids,
                ties=ties,
                aggregate=aggregate,
                exclude_flagged=exclude_flagged,
                reliability=reliability,
                sources=sources,
                labels=labels,
            )
        )
    )


def _preference_records(
    *,
    session: Session,
    vote_ids: list[int] | None,
    ties: str,
    aggregate: str,
    exclude_flagged: bool,
    reliability: dict[int, float] | None,
    sources: list[str] | None,
    labels: LabelsArg,
    judge_ps: dict[int, float] | None = None,
) -> Iterator[PreferenceRow]:
    ties, aggregate, kinds = check_choices(ties, aggregate, labels)
    # Measuring reads every vote: once here serves both the reliability and the flagged raters.
    measured = measure(session=session) if reliability is None or (vote_ids is None and exclude_flagged) else None
    if reliability is None:
        reliability = rater_reliability(session=session, measured=measured)
    if judge_ps is None and "judge" in kinds:  # earned against people's reliability now, measured once
        judge_ps = earned_judge_ps(session, kinds, rater_reliability(session=session, measured=measured))
    if vote_ids is not None:
        votes = votes_by_ids(session, set(vote_ids))
        return listed_rows(
            session, votes, kinds=kinds, ties=ties, aggregate=aggregate, reliability=reliability, judge_ps=judge_ps
        )
    query, _ = eligible_query(session=session, exclude_flagged=exclude_flagged, sources=sources, measured=measured)
    return stream_rows(
        session, query, kinds=kinds, ties=ties, aggregate=aggregate, reliability=reliability, judge_ps=judge_ps
    )


def _written(rows: Sequence[PreferenceRow]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in rows]


class NoiseTally:
    """:func:`label_noise` of rows fed one at a time."""

    def __init__(self) -> None:
        self.disagreeing = 0.0
        self.shared = 0

    def add(self, r: PreferenceRow) -> None:
        # A row with several votes is a majority row, so it has an agreement.
        if not r.is_machine and (r.votes or 1) > 1 and r.agreement is not None:
            self.disagreeing += 1 - r.agreement
            self.shared += 1

    def value(self) -> float:
        return round(min(0.49, self.disagreeing / self.shared), 4) if self.shared else 0.0


def label_noise(rows: Sequence[PreferenceRow]) -> float:
    """The share of votes that disagree with their comparison's label, on comparisons with more
    than one vote: an estimate of how often a label is flipped (0 without overlap)."""
    tally = NoiseTally()
    for r in rows:
        tally.add(r)
    return tally.value()


def no_usable_votes(kinds: frozenset[str]) -> InvalidInput:
    return InvalidInput(
        "no usable votes yet (ties and 'both bad' do not count)",
        remedy="label_comparisons" if "human" not in kinds else "rate_comparisons",
    )


def take_snapshot(
    *,
    session: Session,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
) -> PreferenceSnapshot:
    """Freeze the usable votes now, with their rows built, and the choices that made them; raises if
    there are none. (A run freezes its votes with :func:`rlhf.services.run_data.freeze_votes` and its
    worker builds the rows.)"""
    checked_ties, checked_aggregate, kinds = check_choices(ties, aggregate, labels)
    measured = measure(session=session)  # read once: the flagged raters and the reliability both come from it
    query, info = eligible_query(session=session, exclude_flagged=exclude_flagged, sources=sources, measured=measured)
    reliability = rater_reliability(session=session, measured=measured)
    judge_ps = earned_judge_ps(session, kinds, reliability)
    rows = list(
        stream_rows(
            session,
            query,
            kinds=kinds,
            ties=checked_ties,
            aggregate=checked_aggregate,
            reliability=reliability,
            judge_ps=judge_ps,
        )
    )
    if not rows:
        raise no_usable_votes(kinds)
    human_rows = [r for r in rows if not r.is_machine]
    judge_rows = sum(r.label_source == "judge" for r in rows)
    return PreferenceSnapshot(
        vote_ids=[i for r in rows for i in r.held_vote_ids],
        ties=checked_ties,
        aggregate=checked_aggregate,
        rows=len(rows),
        hash=content_hash(rows),
        label_noise=label_noise(human_rows),
        rater_reliability=reliability,
        labels=kinds,
        machine_rows=len(rows) - len(human_rows) - judge_rows,
        judge_label_p=judge_ps,
        judge_rows=judge_rows,
        **info,
    )


def snapshot_rows(*, session: Session, snapshot: PreferenceSnapshot) -> list[dict[str, Any]]:
    """The rows a snapshot froze, as written; refuses if the stored data no longer matches its hash."""
    if not isinstance(snapshot, PreferenceSnapshot):
        raise InvalidInput(f"a snapshot of {snapshot.aggregate} holds no preference rows")
    if snapshot.vote_count and not snapshot.vote_ids:
        # Its votes are snapshot_vote rows: read it with rlhf.services.runs.run_snapshot.
        raise RLHFError("a stored snapshot was read without the votes it holds")
    if snapshot.hash is None:
        raise RLHFError("the snapshot's rows are not built yet: its run's worker builds them")
    rows = list(
        _preference_records(
            session=session,
            vote_ids=snapshot.vote_ids,
            ties=snapshot.ties,
            aggregate=snapshot.aggregate,
            exclude_flagged=snapshot.exclude_flagged,
            reliability=snapshot.rater_reliability,
            sources=None,
            labels=snapshot.labels,
            judge_ps=snapshot.judge_label_p,
        )
    )
    if content_hash(rows) != snapshot.hash:
        raise Conflict(HASH_MISMATCH)
    return _written(rows)


HASH_MISMATCH = "the votes of this run's snapshot changed since it was taken (hash mismatch)"


def write_rows(rows: Iterable[BaseModel | dict[str, Any]], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows (typed, or as written) as JSONL or Parquet (by ``fmt`` or the file's extension),
    atomically and as they come (see :func:`rlhf.services.export_files.write_stream`)."""
    write_stream(rows, path, fmt)
    return Path(path)


def export(
    *,
    session: Session,
    path: str | Path,
    fmt: str | None = None,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
    margins: bool = False,
) -> int:
    """Write the preference pairs (every comparison source unless ``sources`` says; people's votes
    unless ``labels`` says); returns the row count. Rows are streamed to the file, never all held
    in memory; an interrupted export leaves no file under ``path``. ``margins``: every row also
    gets TRL's ``margin`` column from its strength (0 where none was said). Demonstrations (SFT)
    are written by :func:`rlhf.services.demonstrations.export_sft`."""
    rows = _preference_records(
        session=session,
        vote_ids=None,
        ties=ties,
        aggregate=aggregate,
        exclude_flagged=exclude_flagged,
        reliability=None,
        sources=sources,
        labels=labels,
    )
    if margins:
        rows = (r.model_copy(update={"margin": strength_margin(r.strength)}) for r in rows)
    return write_stream(rows, path, fmt)
