"""Preference data: votes turned into TRL's conversational format, snapshots and export.

A row is ``{"prompt": [messages], "chosen": [assistant message], "rejected": [...]}``
plus provenance and ``rationales`` (what the raters wrote, a list per row). By default there is one row per comparison, labelled by the majority
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

A *snapshot* freezes which votes a run trains on (their ids), the choices above, the
raters' reliability at that moment (so ``label_p`` is the same whenever the run starts),
and a hash of the rows' content, so a checkpoint can always say exactly which votes made
it. With overlap, it also records how often a label is flipped (``label_noise``), as a
figure: per-pair ``label_p`` already carries that doubt into training.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Choice, Comparison, ComparisonSource, Prompt, Response, TrainingRun, Vote
from rlhf.services.quality import left_out_raters, majority
from rlhf.services.soft_labels import rater_reliability, single_vote_p, vote_split_p
from rlhf.services.vote_kinds import LABELS, human_vote, is_machine, machine_vote

TIES = ("drop", "keep")
AGGREGATES = ("majority", "none")


def _check(ties: str, aggregate: str, labels: str = "human") -> None:
    if labels not in LABELS:
        raise InvalidInput(f"labels must be one of {', '.join(LABELS)}")
    if ties not in TIES:
        raise InvalidInput(f"ties must be one of {', '.join(TIES)}")
    if aggregate not in AGGREGATES:
        raise InvalidInput(f"aggregate must be one of {', '.join(AGGREGATES)}")


def _row(prompts, responses, comp: Comparison, choice: Choice) -> dict[str, Any]:
    a, b = responses[comp.response_a_id], responses[comp.response_b_id]
    chosen, rejected = (b, a) if choice is Choice.b else (a, b)
    return {"prompt": prompts[comp.prompt_id].messages,
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "comparison_id": comp.id, "source": comp.source.value}


def _choose_labels(votes: list[Vote], labels: str) -> tuple[list[Vote], list[Vote]]:
    """(people's votes, machine votes) that ``labels`` keeps; with ``both``, a machine vote only
    on a comparison no person voted on."""
    human = [v for v in votes if not is_machine(v.source)] if labels != "machine" else []
    machine = [v for v in votes if is_machine(v.source)] if labels != "human" else []
    if labels == "both":
        voted = {v.comparison_id for v in human}
        machine = [v for v in machine if v.comparison_id not in voted]
    return human, machine


def _rows(session: Session, votes: list[Vote], ties: str, aggregate: str,
          reliability: dict[int, float] | None = None, labels: str = "human") -> list[dict[str, Any]]:
    """Votes as training rows: one per vote (``none``) or one per comparison (``majority``).

    A majority row carries its label's share of the votes (``agreement``); a comparison
    whose top answers are level has no label and gives no row. 'Both bad' never gives a
    row (there is nothing to prefer), and ties only with ``ties="keep"``. Machine rows
    (``labels``) follow the people's, in comparison order.
    """
    _check(ties, aggregate, labels)
    votes, machine = _choose_labels(votes, labels)
    rows = _human_rows(session, votes, ties, aggregate, reliability)
    if machine:
        rows += _machine_rows(session, machine, aggregate)
    return rows


def _machine_rows(session: Session, votes: list[Vote], aggregate: str) -> list[dict[str, Any]]:
    comps, responses, prompts = _lookups(session, votes)
    rows = []
    for v in sorted(votes, key=lambda v: (v.comparison_id, v.id)):
        row = {**_row(prompts, responses, comps[v.comparison_id], v.choice), "rater_id": v.rater_id,
               "label_p": float(v.label_p if v.label_p is not None else 1.0), "rationales": [],
               "label_source": "machine", "machine": v.source}
        if aggregate == "none":
            row["vote_id"] = v.id
        else:
            row.update(votes=1, agreement=1.0, vote_ids=[v.id], rater_ids=[v.rater_id])
        rows.append(row)
    return rows


def _lookups(session: Session, votes: list[Vote]):
    comps = {c.id: c for c in _by_ids(session, Comparison, {v.comparison_id for v in votes})}
    responses = {r.id: r for r in _by_ids(session, Response, {rid for c in comps.values()
                                                               for rid in (c.response_a_id, c.response_b_id)})}
    prompts = {p.id: p for p in _by_ids(session, Prompt, {c.prompt_id for c in comps.values()})}
    return comps, responses, prompts


def _human_rows(session: Session, votes: list[Vote], ties: str, aggregate: str,
                reliability: dict[int, float] | None) -> list[dict[str, Any]]:
    comps, responses, prompts = _lookups(session, votes)

    def usable(choice: Choice) -> bool:
        return choice is not Choice.both_bad and (choice is not Choice.tie or ties == "keep")

    rows = []
    if aggregate == "none":
        for v in votes:
            if usable(v.choice):
                row = {**_row(prompts, responses, comps[v.comparison_id], v.choice), "vote_id": v.id,
                       "rater_id": v.rater_id, "label_p": single_vote_p(v.rater_id, reliability),
                       "rationales": _rationales([v])}
                if ties == "keep":
                    row["tie"] = v.choice is Choice.tie
                rows.append(row)
        return rows
    grouped: dict[int, list[Vote]] = defaultdict(list)
    for v in votes:
        grouped[v.comparison_id].append(v)
    for comp_id in sorted(grouped):
        group = grouped[comp_id]
        label, share = majority([v.choice.value for v in group])
        if label is None or not usable(Choice(label)):
            continue
        row = {**_row(prompts, responses, comps[comp_id], Choice(label)), "votes": len(group),
               "agreement": round(share, 4), "vote_ids": [v.id for v in group],
               "rater_ids": [v.rater_id for v in group],
               "label_p": (vote_split_p(label, [v.choice.value for v in group]) if len(group) > 1
                           else single_vote_p(group[0].rater_id, reliability)),
               "rationales": _rationales(group)}
        if ties == "keep":
            row["tie"] = label == Choice.tie.value
        rows.append(row)
    return rows


def _rationales(votes: list[Vote]) -> list[str]:
    """The raters' reasons behind a row, in vote order (votes without one add nothing)."""
    return [v.rationale for v in votes if v.rationale]


def _by_ids(session: Session, model, ids: set[int]) -> list:
    ids = sorted(ids)
    out = []
    for i in range(0, len(ids), 500):
        out += list(session.exec(select(model).where(model.id.in_(ids[i:i + 500]))))
    return out


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


def eligible_votes(*, session: Session, exclude_flagged: bool = True,
                   sources: list[str] | None = None, labels: str = "human") -> tuple[list[Vote], dict[str, Any]]:
    """The votes data may be built from now, and what was left out: gold pairs' votes (they
    measure raters), raters excluded by an engineer, and (``exclude_flagged``) raters whose
    gold accuracy flagged them. ``sources``: only comparisons of these sources (queue, arena,
    written); all by default. ``labels``: people's votes, machine labels or both (see above)."""
    _check("drop", "majority", labels)
    left_out = left_out_raters(session=session, exclude_flagged=exclude_flagged)
    skip = set(left_out["excluded"]) | set(left_out["flagged"])
    query = (select(Vote).join(Comparison, Comparison.id == Vote.comparison_id)
             .where(~Comparison.is_gold).order_by(Vote.id))
    sources = parse_sources(sources)
    if sources:
        query = query.where(Comparison.source.in_([ComparisonSource(s) for s in sources]))
    if labels == "human":
        query = query.where(human_vote())
    elif labels == "machine":
        query = query.where(machine_vote())
    votes = [v for v in session.exec(query) if v.rater_id not in skip]
    info = {"left_out_raters": left_out, "exclude_flagged": exclude_flagged, "gold_left_out": True}
    if sources:
        info["sources"] = sources
    return votes, info


def preference_rows(*, session: Session, vote_ids: list[int] | None = None, ties: str = "drop",
                    aggregate: str = "majority", exclude_flagged: bool = True,
                    reliability: dict[int, float] | None = None, sources: list[str] | None = None,
                    labels: str = "human") -> list[dict]:
    """Rows from the given votes, or else from every eligible vote (see :func:`eligible_votes`).

    ``label_p`` of single votes uses ``reliability``, else the raters' reliability now.
    """
    _check(ties, aggregate, labels)
    if reliability is None:
        reliability = rater_reliability(session=session)
    if vote_ids is None:
        votes, _ = eligible_votes(session=session, exclude_flagged=exclude_flagged, sources=sources, labels=labels)
    else:
        votes = sorted(_by_ids(session, Vote, set(vote_ids)), key=lambda v: v.id)
    return _rows(session, votes, ties, aggregate, reliability, labels)


def content_hash(rows: list[dict]) -> str:
    # Per-vote rows hash exactly as they always have, so older runs' snapshots still verify.
    canonical = json.dumps([{k: r[k] for k in ("prompt", "chosen", "rejected",
                                               "vote_id" if "vote_id" in r else "vote_ids")} for r in rows],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def label_noise(rows: list[dict]) -> float:
    """The share of votes that disagree with their comparison's label, on comparisons with more
    than one vote: an estimate of how often a label is flipped (0 without overlap)."""
    shared = [r for r in rows if r.get("votes", 1) > 1]
    if not shared:
        return 0.0
    return round(min(0.49, sum(1 - r["agreement"] for r in shared) / len(shared)), 4)


class Snapshot(BaseModel):
    """The data a run trains on, frozen when the run is created; stored as JSON on the run.

    Snapshots stored before a field existed read with its old behaviour (per-vote rows,
    gold not left out), so their hash still verifies.
    """

    model_config = ConfigDict(extra="allow")
    vote_ids: list[int]
    rows: int
    hash: str
    ties: str = "drop"
    aggregate: str = "none"
    label_noise: float = 0.0
    exclude_flagged: bool = True
    gold_left_out: bool = False
    left_out_raters: dict[str, Any] = {}
    # Rater id -> probability of being right, frozen when the snapshot was taken.
    rater_reliability: dict[int, float] = {}
    # Whose votes: human (people only: every snapshot before machine labels), machine or both.
    labels: str = "human"
    machine_rows: int = 0

    @classmethod
    def of(cls, run: TrainingRun) -> "Snapshot | None":
        """The run's snapshot; None for runs that train on no votes (online RL, SFT from a file)."""
        return cls.model_validate(run.snapshot) if run.snapshot else None

    def summary(self) -> dict[str, Any]:
        """Everything but the vote ids (which can be many), plus how many there are."""
        return {**self.model_dump(exclude={"vote_ids"}), "votes": len(self.vote_ids)}


def take_snapshot(*, session: Session, ties: str = "drop", aggregate: str = "majority",
                  exclude_flagged: bool = True, sources: list[str] | None = None,
                  labels: str = "human") -> Snapshot:
    """Freeze the usable votes now, and the choices that made them; raises if there are none."""
    _check(ties, aggregate, labels)
    votes, info = eligible_votes(session=session, exclude_flagged=exclude_flagged, sources=sources, labels=labels)
    reliability = rater_reliability(session=session)
    rows = _rows(session, votes, ties, aggregate, reliability, labels)
    if not rows:
        raise InvalidInput("no usable votes yet (ties and 'both bad' do not count): "
                           + ("label some comparisons first (`rlhf label`)" if labels == "machine" else
                              "rate some comparisons first, or run `rlhf simulate`"))
    ids = [r["vote_id"] for r in rows] if aggregate == "none" else [i for r in rows for i in r["vote_ids"]]
    human_rows = [r for r in rows if r.get("label_source") != "machine"]
    return Snapshot(vote_ids=ids, ties=ties, aggregate=aggregate, rows=len(rows), hash=content_hash(rows),
                    label_noise=label_noise(human_rows), rater_reliability=reliability, labels=labels,
                    machine_rows=len(rows) - len(human_rows), **info)


def snapshot_rows(*, session: Session, snapshot: Snapshot) -> list[dict]:
    """The rows a snapshot froze; refuses if the stored data no longer matches its hash."""
    rows = preference_rows(session=session, vote_ids=snapshot.vote_ids, ties=snapshot.ties,
                           aggregate=snapshot.aggregate, reliability=snapshot.rater_reliability,
                           labels=snapshot.labels)
    if content_hash(rows) != snapshot.hash:
        raise Conflict("the votes of this run's snapshot changed since it was taken (hash mismatch)")
    return rows


def write_rows(rows: list[dict], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows as JSONL or Parquet (by ``fmt`` or the file's extension), atomically."""
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
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)
    return path


def export(*, session: Session, path: str | Path, fmt: str | None = None, ties: str = "drop",
           aggregate: str = "majority", exclude_flagged: bool = True, sources: list[str] | None = None,
           labels: str = "human") -> int:
    """Write the preference pairs (every comparison source unless ``sources`` says; people's votes
    unless ``labels`` says); returns the row count. Demonstrations (SFT) are written by
    :func:`rlhf.services.demonstrations.export_sft`."""
    rows = preference_rows(session=session, ties=ties, aggregate=aggregate, exclude_flagged=exclude_flagged,
                           sources=sources, labels=labels)
    write_rows(rows, path, fmt)
    return len(rows)


def to_jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
