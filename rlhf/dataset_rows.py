"""Training rows as typed records: a preference pair (:class:`PreferenceRow`), a demonstration (:class:`SFTRow`).

The services build them (:mod:`rlhf.services.dataset`, :mod:`rlhf.services.demonstrations`);
the export writes them, a snapshot hashes them (:func:`content_hash`, :func:`sft_hash`),
and the trainer reads them back from its data file (:func:`read_preference_rows`). They
live beside the tables, below every other layer, so the trainer process can import them
without the database.

A row is written as the dict rows have always been (``model_dump``): a field the row's mode
does not have is left out (never ``null``), and keys come in the order they always have —
tests/data/export_golden.txt pins the bytes, and snapshots stored on runs hash these dicts:

- every pair: ``prompt``, ``chosen``, ``rejected`` (TRL's conversational format), ``comparison_id``, ``source``;
- a pair of a ranking (source ``ranking``) only: ``ranking_id`` and ``ranking_size`` (K, its number of
  answers), which training weighs and splits by (:mod:`rlhf.training.ranking_weights`);
- a person's row, one per vote (``aggregate="none"``): ``vote_id``, ``rater_id``, ``label_p``,
  ``rationales``, and with ``ties="keep"`` ``tie``;
- a person's row, one per comparison (``aggregate="majority"``): ``votes``, ``agreement``,
  ``vote_ids``, ``rater_ids``, ``label_p``, ``rationales``, and with ``ties="keep"`` ``tie``;
- a machine label: ``rater_id``, ``label_p``, ``rationales``, ``label_source`` (``"machine"``),
  ``machine`` (the vote's source), then ``vote_id`` per vote, or ``votes``, ``agreement``,
  ``vote_ids``, ``rater_ids`` by majority;
- then on every row ``strength`` (``null`` where none was said: always written, so a reader
  finds the column whatever the first row is), and ``margin`` where margins were asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer, model_validator

from rlhf.errors import InvalidInput

Message = dict[str, Any]  # {"role": ..., "content": ...}, passed through as stored

_PERSON_KEYS = (
    "prompt",
    "chosen",
    "rejected",
    "comparison_id",
    "source",
    "ranking_id",
    "ranking_size",
    "vote_id",
    "votes",
    "agreement",
    "vote_ids",
    "rater_ids",
    "rater_id",
    "label_p",
    "rationales",
    "tie",
    "strength",
    "margin",
)
_MACHINE_KEYS = (
    "prompt",
    "chosen",
    "rejected",
    "comparison_id",
    "source",
    "ranking_id",
    "ranking_size",
    "rater_id",
    "label_p",
    "rationales",
    "label_source",
    "machine",
    "vote_id",
    "votes",
    "agreement",
    "vote_ids",
    "rater_ids",
    "strength",
    "margin",
)
_BY_MAJORITY = ("votes", "agreement", "vote_ids", "rater_ids")


class PreferenceRow(BaseModel):
    """One preference pair and where its label came from: per vote, or by majority of a comparison's votes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: list[Message]
    chosen: list[Message]  # one assistant message
    rejected: list[Message]
    comparison_id: int
    source: str  # the comparison's source: queue, arena, written or ranking
    # A ranking's pair only: the ranking (one judgement of K answers) and K. Never written otherwise.
    ranking_id: int | None = None
    ranking_size: int | None = None
    vote_id: int | None = None  # per vote only
    votes: int | None = None  # by majority only: how many votes the comparison has,
    agreement: float | None = None  # the label's share of them (rounded to 4 places),
    vote_ids: list[int] | None = None  # and which, with their raters
    rater_ids: list[int] | None = None
    rater_id: int | None = None  # per vote, and every machine label
    label_p: float  # the probability that the label is right (rlhf.services.soft_labels)
    rationales: list[str]  # what the raters wrote, in vote order
    tie: bool | None = None  # with ties="keep" only: the label is a tie (a person's row)
    # A model's label only: a reward model's ("machine") or an AI judge's ("judge").
    label_source: Literal["machine", "judge"] | None = None
    machine: str | None = None  # a model's label only: the vote's source, "machine:<checkpoint id>", "judge:<id>"
    # How much better the chosen answer is (rlhf.models.Strength: 1 slightly, 2 clearly, 3 much),
    # written on every row, null where not said; by majority, see :func:`combined_strength`.
    strength: int | None = None
    # Asked for (``margins``): TRL's margin column, on every row (0 where no strength was said),
    # as TRL's collator looks at the first example only to decide whether there are margins.
    margin: float | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> PreferenceRow:
        majority = [getattr(self, k) is not None for k in _BY_MAJORITY]
        if (self.vote_id is None) != all(majority) or any(majority) != all(majority):
            raise ValueError("a row is per vote (vote_id) or by majority (votes, agreement, vote_ids, rater_ids)")
        if (self.label_source is None) != (self.machine is None):
            raise ValueError("a model's label has both label_source and machine")
        if self.is_machine and self.tie is not None:
            raise ValueError("a model's label is never a tie")
        if self.strength is not None and (self.strength not in (1, 2, 3) or self.tie):
            raise ValueError("a strength is 1, 2 or 3, and a tie has none")
        if (self.ranking_id is None) != (self.ranking_size is None):
            raise ValueError("a ranking's pair has both ranking_id and ranking_size")
        if self.ranking_size is not None and self.ranking_size < 2:
            raise ValueError(f"a ranking orders at least 2 answers, not {self.ranking_size}")
        return self

    @property
    def is_machine(self) -> bool:
        """A label a model made (a reward model's or a judge's), not a person's."""
        return self.label_source is not None

    @property
    def held_vote_ids(self) -> list[int]:
        """The votes this row is made of."""
        return [self.vote_id] if self.vote_id is not None else list(self.vote_ids or [])

    @model_serializer(mode="wrap")
    def _as_written(self, handler) -> dict[str, Any]:
        data = handler(self)
        keys = _MACHINE_KEYS if self.is_machine else _PERSON_KEYS
        return {k: data[k] for k in keys if k in data and (data[k] is not None or k == "strength")}


# The margin a level means, as Llama 2's reward model used them ("small" scale): a pair said to
# be much better must be separated by a whole logit, a slightly better one by a third.
STRENGTH_MARGINS = (1 / 3, 2 / 3, 1.0)


def strength_margin(strength: int | None, margins: Sequence[float] = STRENGTH_MARGINS) -> float:
    """TRL's ``margin`` for a row of this strength: 0 where none was said."""
    return 0.0 if strength is None else float(margins[strength - 1])


def combined_strength(strengths: Sequence[int | None]) -> int | None:
    """The strength of a row made by majority, from the strengths its label's votes gave: their
    median, the lower middle one when there are two (a row claims no more than half its raters
    said), and None when none of them said one. Votes for another answer give none to it."""
    said = sorted(s for s in strengths if s is not None)
    return said[(len(said) - 1) // 2] if said else None


class SFTRow(BaseModel):
    """One demonstration in TRL's conversational SFT format: the conversation ending with the rater's answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    messages: list[Message]
    demonstration_id: int
    rater_id: int
    comparison_id: int | None  # the pair it was written for; None (written as null) for a conversation of its own


def content_hash(rows: Sequence[PreferenceRow]) -> str:
    """The hash a preference snapshot stores: over each row's pair and vote id(s), as it always has been."""
    canonical = json.dumps(
        [
            {
                "prompt": r.prompt,
                "chosen": r.chosen,
                "rejected": r.rejected,
                **({"vote_id": r.vote_id} if r.vote_id is not None else {"vote_ids": r.vote_ids}),
            }
            for r in rows
        ],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def sft_hash(rows: Sequence[SFTRow]) -> str:
    """The hash an SFT snapshot stores: over the rows' messages, as it always has been."""
    return hashlib.sha256(
        json.dumps([r.messages for r in rows], sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def read_preference_rows(path: str | Path) -> list[dict[str, Any]]:
    """The preference rows of a JSONL data file, each checked to be a :class:`PreferenceRow`, as read.

    The trainer's side of the hand-off: a file that is not preference rows fails here, naming
    the line, before any model is loaded.
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                PreferenceRow.model_validate(row)
            except ValidationError as exc:
                raise InvalidInput(f"{path}, line {number}: not a preference row: {exc}") from exc
            rows.append(row)
    return rows
