"""How good the votes are: agreement between raters, gold accuracy, and who is flagged.

*Agreement* is measured on comparisons that more than one rater voted on (overlap,
``target_votes`` > 1), gold pairs excluded: the share of pairs of votes on the same
comparison that chose the same answer (per rater: of the pairs they are in), and
Krippendorff's alpha (nominal: ``a``, ``b``, ``tie`` and ``both_bad`` are categories),
which corrects that share for the agreement chance alone would give.

*Gold accuracy* is the share of a rater's votes on gold pairs that match the known
answer. A rater who has answered at least ``gold_min_answered`` gold pairs and is under
``gold_min_accuracy`` is *flagged*; flagged raters' votes are left out of exports and
training unless asked for, and an engineer can exclude any rater by hand.

Machine labels (:mod:`rlhf.services.vote_kinds`) are left out of every figure here: a
reward model is not a rater, and its labels must not raise the agreement they are judged by.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy import String, type_coerce
from sqlmodel import Session, col, func, select

from rlhf.models import Choice, Comparison, ComparisonStatus, User, Vote
from rlhf.services.int_columns import int_columns
from rlhf.services.vote_kinds import human_vote
from rlhf.settings import get_settings

CATEGORIES = [c.value for c in Choice]


@dataclass
class RaterQuality:
    rater_id: int
    name: str
    votes: int = 0
    # Agreement: pairs of votes on shared comparisons, and how many of those matched.
    pairs: int = 0
    agreeing_pairs: int = 0
    gold_answered: int = 0
    gold_correct: int = 0
    excluded: bool = False
    flagged: bool = False

    @property
    def agreement(self) -> float | None:
        return self.agreeing_pairs / self.pairs if self.pairs else None

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": _round(self.agreement), "gold_accuracy": _round(self.gold_accuracy)}


@dataclass
class Quality:
    overlap_comparisons: int  # comparisons with two votes or more (gold excluded)
    pairs: int
    agreement: float | None
    krippendorff_alpha: float | None
    vote_counts: dict[int, int]  # votes per comparison -> how many comparisons have that many (gold excluded)
    unreachable: int  # open comparisons asking for more votes than there are active users to give them
    gold_comparisons: int
    raters: list[RaterQuality] = field(default_factory=list)

    @property
    def flagged(self) -> list[int]:
        return [r.rater_id for r in self.raters if r.flagged]

    def as_dict(self) -> dict[str, Any]:
        return {
            "overlap_comparisons": self.overlap_comparisons,
            "pairs": self.pairs,
            "agreement": _round(self.agreement),
            "krippendorff_alpha": _round(self.krippendorff_alpha),
            "vote_counts": {str(k): v for k, v in sorted(self.vote_counts.items())},
            "unreachable": self.unreachable,
            "gold_comparisons": self.gold_comparisons,
            "flagged": self.flagged,
            "raters": [r.as_dict() for r in self.raters],
        }


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Nominal alpha over units (each the list of values given to one comparison).

    None when it is undefined: no unit with two values, or one category only (no
    disagreement is possible, so none can be expected).
    """
    code = {c: i for i, c in enumerate(CATEGORIES)}
    counts = np.zeros((len(units), len(CATEGORIES)), dtype=np.int64)
    unit_of = np.repeat(np.arange(len(units)), [len(u) for u in units])
    np.add.at(counts, (unit_of, np.array([code[v] for u in units for v in u], dtype=np.int64)), 1)
    return alpha_from_counts(counts)


def alpha_from_counts(value_counts: Any) -> float | None:
    """Nominal alpha from a units x :data:`CATEGORIES` matrix: how often each unit got each answer.

    Krippendorff's coincidence matrix is a sum over units, so it is built here from the counts in
    a few array operations (the ``krippendorff`` library's own loop over units took a third of a
    second at 350,000 units); the tests hold it equal to the library's figure.
    """
    counts = np.asarray(value_counts, dtype=np.float64)
    size = counts.sum(axis=1)
    # A unit with one value has nothing to pair with; leaving it out changes nothing but the work.
    pairable = counts[size >= 2]
    per_value = pairable.sum(axis=0)
    if not len(pairable) or np.count_nonzero(per_value) < 2:
        return None
    # Coincidences of a value with itself: each unit's n_c (n_c - 1) / (m_u - 1).
    same = (pairable * (pairable - 1) / (size[size >= 2, None] - 1)).sum()
    total = per_value.sum()
    observed = total - same  # coincidences of different values
    expected = (total * total - (per_value * per_value).sum()) / (total - 1)
    return float(1.0 - observed / expected)


def is_flagged(rater: RaterQuality, min_accuracy: float, min_answered: int) -> bool:
    return rater.gold_answered >= min_answered and (rater.gold_accuracy or 0.0) < min_accuracy


def _thresholds(min_accuracy: float | None, min_answered: int | None) -> tuple[float, int]:
    if min_accuracy is None or min_answered is None:
        settings = get_settings()
        min_accuracy = settings.gold_min_accuracy if min_accuracy is None else min_accuracy
        min_answered = settings.gold_min_answered if min_answered is None else min_answered
    return min_accuracy, min_answered


def _human_votes(session: Session) -> tuple[np.ndarray, ...]:
    """Every person's vote as columns, in no set order: comparison id, rater id, answer (an index into
    :data:`CATEGORIES`), on a gold pair, and the gold answer (-1 where none is known)."""
    # Plain integer columns, answers coded in SQL, read straight into an array (int_columns): at a
    # million votes an object, or even a tuple, per row costs more than the figures. Gold pairs are
    # few, so they are read apart and matched here rather than joined to every vote.
    code = {c: i for i, c in enumerate(CATEGORIES)}
    votes = _vote_columns(session, code)
    golds = session.exec(
        select(Comparison.id, type_coerce(Comparison.gold_choice, String))
        .where(Comparison.is_gold)
        .order_by(col(Comparison.id))
    ).all()
    n = len(votes)
    comp = np.ascontiguousarray(votes[:, 0])
    gold_ids = np.fromiter((i for i, _ in golds), dtype=np.int64, count=len(golds))
    gold_codes = np.fromiter((-1 if g is None else code[g] for _, g in golds), dtype=np.int64, count=len(golds))
    is_gold = np.isin(comp, gold_ids)
    gold_choice = np.full(n, -1, dtype=np.int64)
    gold_choice[is_gold] = gold_codes[np.searchsorted(gold_ids, comp[is_gold])]
    return comp, np.ascontiguousarray(votes[:, 1]), np.ascontiguousarray(votes[:, 2]), is_gold, gold_choice


def _vote_columns(session: Session, code: dict[str, int]) -> np.ndarray:
    """(comparison id, rater id, answer) per person's vote."""
    if session.get_bind().dialect.name == "postgresql":
        # One column instead of three on the way (each is an aggregate's work): comparison id,
        # rater id (a positive 32-bit integer) and the answer (under 4) packed into 64 bits. An
        # answer outside the codes is NULL, which the read refuses; a comparison id from 2**30 on
        # overflows, which PostgreSQL refuses, and the columns then travel apart.
        answer = sa.case(code, value=type_coerce(Vote.choice, String), else_=None)
        packed = sa.cast(Vote.comparison_id, sa.BigInteger) * (1 << 33) + sa.cast(Vote.rater_id, sa.BigInteger) * 4
        try:
            with session.begin_nested():
                p = int_columns(session, sa.select(packed + answer).where(human_vote()))[:, 0]
            return np.stack([p >> 33, (p >> 2) & ((1 << 31) - 1), p & 3], axis=1)
        except sa.exc.DataError:
            pass
    answer = sa.case(code, value=type_coerce(Vote.choice, String), else_=-1)
    return int_columns(session, sa.select(col(Vote.comparison_id), col(Vote.rater_id), answer).where(human_vote()))


def _numbered(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids, sorted; each id's index among them): ``np.unique``'s answer, without
    its sort of every vote where the ids are dense (user ids are)."""
    if not len(ids) or int(ids.max()) > 4 * len(ids) + 1024:
        return np.unique(ids, return_inverse=True)
    distinct = np.flatnonzero(np.bincount(ids))
    index = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    index[distinct] = np.arange(len(distinct))
    return distinct, index[ids]


def _unit_counts(comp: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(units x CATEGORIES answer counts, each vote's unit).

    Comparison ids are dense, so an id is its own unit (ids with no vote are rows of zeros, which
    no figure counts), and counting needs no sort. Sparse ids are numbered first.
    """
    if len(comp) and int(comp.max()) > 4 * len(comp) + 1024:
        unit = np.unique(comp, return_inverse=True)[1]
    else:
        unit = comp
    units = int(unit.max()) + 1 if len(unit) else 0
    width = len(CATEGORIES)
    return np.bincount(unit * width + choice, minlength=units * width).reshape(-1, width), unit


def measure(
    *, session: Session, gold_min_accuracy: float | None = None, gold_min_answered: int | None = None
) -> Quality:
    """Agreement and gold figures over every vote; thresholds default to the settings."""
    gold_min_accuracy, gold_min_answered = _thresholds(gold_min_accuracy, gold_min_answered)
    users = {u.id: u for u in session.exec(select(User))}
    comp, rater_ids, choice, is_gold, gold_choice = _human_votes(session)
    uids, rater = _numbered(rater_ids)
    size = len(uids)
    answered = is_gold & (gold_choice >= 0)
    gold_answered = np.bincount(rater[answered], minlength=size)
    gold_correct = np.bincount(rater[answered & (choice == gold_choice)], minlength=size)

    shared = ~is_gold
    value_counts, unit = _unit_counts(comp[shared], choice[shared])
    unit_size = value_counts.sum(axis=1)
    # Each vote pairs with every other vote on its unit, and agrees with those of the same answer.
    rater_pairs = np.bincount(rater[shared], weights=unit_size[unit] - 1, minlength=size)
    rater_agreeing = np.bincount(rater[shared], weights=value_counts[unit, choice[shared]] - 1, minlength=size)
    pairs = int((unit_size * (unit_size - 1) // 2).sum())
    agreeing = int((value_counts * (value_counts - 1) // 2).sum())
    votes = np.bincount(rater, minlength=size)
    raters = []
    for i, uid in enumerate(uids.tolist()):
        r = RaterQuality(
            rater_id=uid,
            name=users[uid].name,
            votes=int(votes[i]),
            pairs=int(rater_pairs[i]),
            agreeing_pairs=int(rater_agreeing[i]),
            gold_answered=int(gold_answered[i]),
            gold_correct=int(gold_correct[i]),
            excluded=users[uid].excluded,
        )
        r.flagged = is_flagged(r, gold_min_accuracy, gold_min_answered)
        raters.append(r)

    counts = session.exec(
        select(Comparison.vote_count, func.count()).where(~col(Comparison.is_gold)).group_by(col(Comparison.vote_count))
    ).all()
    active = sum(1 for u in users.values() if u.active and not u.role.never_logs_in)
    unreachable = session.exec(
        select(func.count())
        .select_from(Comparison)
        .where(Comparison.status == ComparisonStatus.open, ~col(Comparison.is_gold), Comparison.target_votes > active)
    ).one()
    gold = session.exec(select(func.count()).select_from(Comparison).where(Comparison.is_gold)).one()
    return Quality(
        overlap_comparisons=int(np.count_nonzero(unit_size >= 2)),
        pairs=pairs,
        agreement=agreeing / pairs if pairs else None,
        krippendorff_alpha=alpha_from_counts(value_counts),
        vote_counts=dict(counts),
        unreachable=unreachable,
        gold_comparisons=gold,
        raters=sorted(raters, key=lambda r: r.name),
    )


def left_out_raters(
    *,
    session: Session,
    exclude_flagged: bool = True,
    gold_min_accuracy: float | None = None,
    gold_min_answered: int | None = None,
    measured: Quality | None = None,
) -> dict[str, list[int]]:
    """Raters whose votes an export or a run leaves out: excluded by hand, and flagged by gold.

    ``measured``: a :func:`measure` the caller already has (at the same thresholds), so a
    caller that needs it for more than this reads every vote once; else it is measured here.
    """
    # A primary key read back from its table is never NULL.
    excluded = sorted(cast(Sequence[int], session.exec(select(User.id).where(User.excluded)).all()))
    flagged: list[int] = []
    if exclude_flagged:
        if measured is None:
            measured = measure(
                session=session, gold_min_accuracy=gold_min_accuracy, gold_min_answered=gold_min_answered
            )
        flagged = measured.flagged
    return {"excluded": excluded, "flagged": sorted(set(flagged) - set(excluded))}


def majority(choices: list[str]) -> tuple[str | None, float]:
    """(the most chosen answer, its share); None when the top answers are level."""
    if not choices:
        return None, 0.0
    ranked = Counter(choices).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, ranked[0][1] / len(choices)
    return ranked[0][0], ranked[0][1] / len(choices)
