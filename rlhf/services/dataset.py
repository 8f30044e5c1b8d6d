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

``labels`` chooses whose votes make rows: ``human`` (the default: people's and simulated
raters' votes, never machine labels), ``machine`` (only the reward model's machine labels,
see :mod:`rlhf.services.machine_labels`), or ``both`` (people's votes, and the machine label
of each comparison no person has voted on: a person's vote always wins). A machine row's
``label_p`` is its calibrated probability, and it carries ``label_source: "machine"``.

A *snapshot* (:class:`~rlhf.services.snapshots.PreferenceSnapshot`) freezes which votes a
run trains on (their ids), the choices above, the
raters' reliability at that moment (so ``label_p`` is the same whenever the run starts),
and a hash of the rows' content, so a checkpoint can always say exactly which votes made
it. With overlap, it also records how often a label is flipped (``label_noise``), as a
figure: per-pair ``label_p`` already carries that doubt into training.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session, col

from rlhf.dataset_rows import PreferenceRow, content_hash
from rlhf.errors import Conflict, InvalidInput, RLHFError
from rlhf.models import Choice, Comparison, ComparisonSource, Vote
from rlhf.models import VoteKind as StoredKind
from rlhf.services.quality import Quality, left_out_raters, majority, measure
from rlhf.services.snapshots import Aggregate, PreferenceSnapshot, Snapshot, Ties, VoteKind, parse_labels
from rlhf.services.soft_labels import rater_reliability, single_vote_p, vote_split_p
from rlhf.services.vote_kinds import human_vote, machine_vote
from rlhf.services.vote_reads import VOTE_COLUMNS, PairTexts, VoteRead, pairs_of, read_votes, votes_by_ids

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
    "to_jsonl_bytes",
    "to_parquet_bytes",
    "write_rows",
]
LabelsArg = str | Iterable[str]  # a name (human, machine, both) or vote kinds: see rlhf.services.snapshots

TIES: tuple[Ties, ...] = ("drop", "keep")
AGGREGATES: tuple[Aggregate, ...] = ("majority", "none")


def _check(ties: str, aggregate: str, labels: LabelsArg = "human") -> tuple[Ties, Aggregate, frozenset[VoteKind]]:
    """The choices as checked values: ``ties``, ``aggregate`` and the vote kinds ``labels`` names."""
    kinds = parse_labels(labels)
    if ties in TIES and aggregate in AGGREGATES:  # tested this way round so mypy narrows both
        return ties, aggregate, kinds
    if ties not in TIES:
        raise InvalidInput(f"ties must be one of {', '.join(TIES)}")
    raise InvalidInput(f"aggregate must be one of {', '.join(AGGREGATES)}")


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


def _choose_labels(votes: list[VoteRead], kinds: frozenset[str]) -> tuple[list[VoteRead], list[VoteRead]]:
    """(people's votes, machine votes) that ``kinds`` keeps; with both, a machine vote only
    on a comparison no person voted on."""
    human = [v for v in votes if v.kind is not StoredKind.machine] if "human" in kinds else []
    machine = [v for v in votes if v.kind is StoredKind.machine] if "machine" in kinds else []
    if human and machine:
        voted = {v.comparison_id for v in human}
        machine = [v for v in machine if v.comparison_id not in voted]
    return human, machine


def _rows(
    session: Session,
    votes: list[VoteRead],
    ties: str,
    aggregate: str,
    reliability: dict[int, float],
    labels: LabelsArg = "human",
) -> list[PreferenceRow]:
    """Votes as training rows: one per vote (``none``) or one per comparison (``majority``).

    A majority row carries its label's share of the votes (``agreement``); a comparison
    whose top answers are level has no label and gives no row. 'Both bad' never gives a
    row (there is nothing to prefer), and ties only with ``ties="keep"``. Machine rows
    (``labels``) follow the people's, in comparison order.
    """
    votes, machine = _choose_labels(votes, _check(ties, aggregate, labels)[2])
    rows = _human_rows(session, votes, ties, aggregate, reliability)
    if machine:
        rows += _machine_rows(session, machine, aggregate)
    return rows


def _machine_rows(session: Session, votes: list[VoteRead], aggregate: str) -> list[PreferenceRow]:
    pairs = pairs_of(session, votes)
    rows = []
    for v in sorted(votes, key=lambda v: (v.comparison_id, v.id)):
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
                label_p=float(v.label_p if v.label_p is not None else 1.0),
                rationales=[],
                label_source="machine",
                machine=v.source,
            )
        )
    return rows


def _human_rows(
    session: Session, votes: list[VoteRead], ties: str, aggregate: str, reliability: dict[int, float]
) -> list[PreferenceRow]:
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
            )
        )
    return rows


def _rationales(votes: list[VoteRead]) -> list[str]:
    """The raters' reasons behind a row, in vote order (votes without one add nothing)."""
    return [v.rationale for v in votes if v.rationale]


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


def eligible_votes(
    *,
    session: Session,
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
    measured: Quality | None = None,
) -> tuple[list[VoteRead], dict[str, Any]]:
    """The votes data may be built from now, and what was left out: gold pairs' votes (they
    measure raters), raters excluded by an engineer, and (``exclude_flagged``) raters whose
    gold accuracy flagged them. ``sources``: only comparisons of these sources (queue, arena,
    written); all by default. ``labels``: people's votes, machine labels or both (see above).
    ``measured``: the raters' quality if the caller has it already (else measured here)."""
    _, _, kinds = _check("drop", "majority", labels)
    left_out = left_out_raters(session=session, exclude_flagged=exclude_flagged, measured=measured)
    skip = set(left_out["excluded"]) | set(left_out["flagged"])
    query = (
        sa.select(*VOTE_COLUMNS)
        .join(Comparison, col(Comparison.id) == Vote.comparison_id)
        .where(~col(Comparison.is_gold))
        .order_by(col(Vote.id))
    )
    sources = parse_sources(sources)
    if sources:
        query = query.where(col(Comparison.source).in_([ComparisonSource(s) for s in sources]))
    if "machine" not in kinds:
        query = query.where(human_vote())
    elif "human" not in kinds:
        query = query.where(machine_vote())
    votes = [v for v in read_votes(session, query) if v.rater_id not in skip]
    info = {"left_out_raters": left_out, "exclude_flagged": exclude_flagged, "gold_left_out": True}
    if sources:
        info["sources"] = sources
    return votes, info


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
) -> list[PreferenceRow]:
    _check(ties, aggregate, labels)
    # Measuring reads every vote: once here serves both the reliability and the flagged raters.
    measured = measure(session=session) if reliability is None or (vote_ids is None and exclude_flagged) else None
    if reliability is None:
        reliability = rater_reliability(session=session, measured=measured)
    if vote_ids is None:
        votes, _ = eligible_votes(
            session=session, exclude_flagged=exclude_flagged, sources=sources, labels=labels, measured=measured
        )
    else:
        votes = votes_by_ids(session, set(vote_ids))
    return _rows(session, votes, ties, aggregate, reliability, labels)


def _written(rows: Sequence[PreferenceRow]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in rows]


def label_noise(rows: Sequence[PreferenceRow]) -> float:
    """The share of votes that disagree with their comparison's label, on comparisons with more
    than one vote: an estimate of how often a label is flipped (0 without overlap)."""
    # A row with several votes is a majority row, so it has an agreement.
    shared = [r.agreement for r in rows if (r.votes or 1) > 1 and r.agreement is not None]
    if not shared:
        return 0.0
    return round(min(0.49, sum(1 - a for a in shared) / len(shared)), 4)


def take_snapshot(
    *,
    session: Session,
    ties: str = "drop",
    aggregate: str = "majority",
    exclude_flagged: bool = True,
    sources: list[str] | None = None,
    labels: LabelsArg = "human",
) -> PreferenceSnapshot:
    """Freeze the usable votes now, and the choices that made them; raises if there are none."""
    checked_ties, checked_aggregate, kinds = _check(ties, aggregate, labels)
    measured = measure(session=session)  # read once: the flagged raters and the reliability both come from it
    votes, info = eligible_votes(
        session=session, exclude_flagged=exclude_flagged, sources=sources, labels=labels, measured=measured
    )
    reliability = rater_reliability(session=session, measured=measured)
    rows = _rows(session, votes, ties, aggregate, reliability, labels)
    if not rows:
        raise InvalidInput(
            "no usable votes yet (ties and 'both bad' do not count)",
            remedy="label_comparisons" if "human" not in kinds else "rate_comparisons",
        )
    human_rows = [r for r in rows if not r.is_machine]
    return PreferenceSnapshot(
        vote_ids=[i for r in rows for i in r.held_vote_ids],
        ties=checked_ties,
        aggregate=checked_aggregate,
        rows=len(rows),
        hash=content_hash(rows),
        label_noise=label_noise(human_rows),
        rater_reliability=reliability,
        labels=kinds,
        machine_rows=len(rows) - len(human_rows),
        **info,
    )


def snapshot_rows(*, session: Session, snapshot: PreferenceSnapshot) -> list[dict[str, Any]]:
    """The rows a snapshot froze, as written; refuses if the stored data no longer matches its hash."""
    if not isinstance(snapshot, PreferenceSnapshot):
        raise InvalidInput(f"a snapshot of {snapshot.aggregate} holds no preference rows")
    if snapshot.vote_count and not snapshot.vote_ids:
        # Its votes are snapshot_vote rows: read it with rlhf.services.runs.run_snapshot.
        raise RLHFError("a stored snapshot was read without the votes it holds")
    rows = _preference_records(
        session=session,
        vote_ids=snapshot.vote_ids,
        ties=snapshot.ties,
        aggregate=snapshot.aggregate,
        exclude_flagged=snapshot.exclude_flagged,
        reliability=snapshot.rater_reliability,
        sources=None,
        labels=snapshot.labels,
    )
    if content_hash(rows) != snapshot.hash:
        raise Conflict("the votes of this run's snapshot changed since it was taken (hash mismatch)")
    return _written(rows)


def _as_written(rows: Sequence[BaseModel | dict[str, Any]]) -> list[dict[str, Any]]:
    return [r.model_dump() if isinstance(r, BaseModel) else r for r in rows]


def write_rows(rows: Sequence[BaseModel | dict[str, Any]], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows (typed, or as written) as JSONL or Parquet (by ``fmt`` or the file's extension), atomically."""
    rows = _as_written(rows)
    path = Path(path)
    fmt = fmt or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        raise InvalidInput(f"unknown format {fmt!r}; use jsonl or parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        tmp.write_bytes(to_parquet_bytes(rows))
    tmp.replace(path)
    return path


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
) -> int:
    """Write the preference pairs (every comparison source unless ``sources`` says; people's votes
    unless ``labels`` says); returns the row count. Demonstrations (SFT) are written by
    :func:`rlhf.services.demonstrations.export_sft`."""
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
    write_rows(rows, path, fmt)
    return len(rows)


def to_jsonl_bytes(rows: Sequence[BaseModel | dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _as_written(rows)).encode()


def to_parquet_bytes(rows: Sequence[BaseModel | dict[str, Any]]) -> bytes:
    """Rows as one Parquet file. Every key any row has is a column, null where a row lacks it: rows
    leave keys out (a person's row has no ``label_p``), and a mixed export must keep them all."""
    import pyarrow as pa  # heavy: pyarrow loads only where Parquet is written
    import pyarrow.parquet as pq

    rows = _as_written(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns}), buffer)
    return buffer.getvalue()
