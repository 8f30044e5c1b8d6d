"""Preference data: votes turned into TRL's conversational format, snapshots and export.

A row is ``{"prompt": [messages], "chosen": [assistant message], "rejected": [...]}``
plus provenance (comparison, vote, rater). A *snapshot* freezes which votes a run
trains on (their ids) and a hash of the rows' content, so a checkpoint can always say
exactly which votes made it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from rlhf.errors import Conflict, InvalidInput
from rlhf.models import Choice, Comparison, Prompt, Response, Vote

TIES = ("drop", "keep")


def _rows(session: Session, votes: list[Vote], ties: str) -> list[dict[str, Any]]:
    if ties not in TIES:
        raise InvalidInput(f"ties must be one of {', '.join(TIES)}")
    comps = {c.id: c for c in _by_ids(session, Comparison, {v.comparison_id for v in votes})}
    responses = {r.id: r for r in _by_ids(session, Response, {rid for c in comps.values()
                                                               for rid in (c.response_a_id, c.response_b_id)})}
    prompts = {p.id: p for p in _by_ids(session, Prompt, {c.prompt_id for c in comps.values()})}
    rows = []
    for v in votes:
        if v.choice is Choice.both_bad or (v.choice is Choice.tie and ties == "drop"):
            continue
        c = comps[v.comparison_id]
        a, b = responses[c.response_a_id], responses[c.response_b_id]
        chosen, rejected = (b, a) if v.choice is Choice.b else (a, b)
        row = {
            "prompt": prompts[c.prompt_id].messages,
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "comparison_id": c.id,
            "vote_id": v.id,
            "rater_id": v.rater_id,
        }
        if ties == "keep":
            row["tie"] = v.choice is Choice.tie
        rows.append(row)
    return rows


def _by_ids(session: Session, model, ids: set[int]) -> list:
    ids = sorted(ids)
    out = []
    for i in range(0, len(ids), 500):
        out += list(session.exec(select(model).where(model.id.in_(ids[i:i + 500]))))
    return out


def preference_rows(*, session: Session, vote_ids: list[int] | None = None, ties: str = "drop") -> list[dict]:
    query = select(Vote).order_by(Vote.id)
    votes = list(session.exec(query)) if vote_ids is None else sorted(_by_ids(session, Vote, set(vote_ids)),
                                                                       key=lambda v: v.id)
    return _rows(session, votes, ties)


def content_hash(rows: list[dict]) -> str:
    canonical = json.dumps([{k: r[k] for k in ("prompt", "chosen", "rejected", "vote_id")} for r in rows],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def take_snapshot(*, session: Session, ties: str = "drop") -> dict[str, Any]:
    """Freeze the usable votes now; raises if there are none (nothing to train on)."""
    rows = preference_rows(session=session, ties=ties)
    if not rows:
        raise InvalidInput("no usable votes yet (ties and 'both bad' do not count): "
                           "rate some comparisons first, or run `rlhf simulate`")
    return {"vote_ids": [r["vote_id"] for r in rows], "ties": ties, "rows": len(rows),
            "hash": content_hash(rows)}


def snapshot_rows(*, session: Session, snapshot: dict[str, Any]) -> list[dict]:
    """The rows a snapshot froze; refuses if the stored data no longer matches its hash."""
    rows = preference_rows(session=session, vote_ids=snapshot["vote_ids"], ties=snapshot.get("ties", "drop"))
    if content_hash(rows) != snapshot["hash"]:
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


def export(*, session: Session, path: str | Path, fmt: str | None = None, ties: str = "drop") -> int:
    rows = preference_rows(session=session, ties=ties)
    write_rows(rows, path, fmt)
    return len(rows)


def to_jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
