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
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, cast

from sqlmodel import Session, col, func, select

from rlhf.models import Choice, Comparison, ComparisonStatus, Role, User, Vote
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
    import krippendorff
    import numpy as np

    pairable = [u for u in units if len(u) >= 2]
    if not pairable or len({v for u in pairable for v in u}) < 2:
        return None
    width = max(len(u) for u in pairable)
    # The library wants raters x units; a unit's votes need not come from the same raters,
    # so each unit fills the first rows it needs ("coders" are slots, which alpha allows).
    data = np.full((width, len(pairable)), np.nan)
    for j, unit in enumerate(pairable):
        for i, value in enumerate(unit):
            data[i, j] = CATEGORIES.index(value)
    return float(
        krippendorff.alpha(
            reliability_data=data, level_of_measurement="nominal", value_domain=list(range(len(CATEGORIES)))
        )
    )


def is_flagged(rater: RaterQuality, min_accuracy: float, min_answered: int) -> bool:
    return rater.gold_answered >= min_answered and (rater.gold_accuracy or 0.0) < min_accuracy


def _thresholds(min_accuracy: float | None, min_answered: int | None) -> tuple[float, int]:
    if min_accuracy is None or min_answered is None:
        settings = get_settings()
        min_accuracy = settings.gold_min_accuracy if min_accuracy is None else min_accuracy
        min_answered = settings.gold_min_answered if min_answered is None else min_answered
    return min_accuracy, min_answered


def measure(
    *, session: Session, gold_min_accuracy: float | None = None, gold_min_answered: int | None = None
) -> Quality:
    """Agreement and gold figures over every vote; thresholds default to the settings."""
    gold_min_accuracy, gold_min_answered = _thresholds(gold_min_accuracy, gold_min_answered)
    users = {u.id: u for u in session.exec(select(User))}
    raters: dict[int, RaterQuality] = {}

    def rater(uid: int) -> RaterQuality:
        if uid not in raters:
            u = users[uid]
            raters[uid] = RaterQuality(rater_id=uid, name=u.name, excluded=u.excluded)
        return raters[uid]

    rows = session.exec(
        # sqlmodel's select() is typed for at most four columns; at run time it takes any number.
        select(  # type: ignore[call-overload]
            Vote.comparison_id, Vote.rater_id, Vote.choice, Comparison.is_gold, Comparison.gold_choice
        )
        .join(Comparison, col(Comparison.id) == Vote.comparison_id)
        .where(human_vote())
        .order_by(col(Vote.id))
    ).all()
    by_comparison: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for comp_id, uid, choice, is_gold, gold_choice in rows:
        r = rater(uid)
        r.votes += 1
        if is_gold:
            if gold_choice is not None:
                r.gold_answered += 1
                r.gold_correct += choice == gold_choice
        else:
            by_comparison[comp_id].append((uid, choice.value))

    pairs = agreeing = 0
    for votes in by_comparison.values():
        for (u1, c1), (u2, c2) in combinations(votes, 2):
            same = c1 == c2
            pairs += 1
            agreeing += same
            for uid in (u1, u2):
                raters[uid].pairs += 1
                raters[uid].agreeing_pairs += same
    for r in raters.values():
        r.flagged = is_flagged(r, gold_min_accuracy, gold_min_answered)

    counts = session.exec(
        select(Comparison.vote_count, func.count()).where(~col(Comparison.is_gold)).group_by(col(Comparison.vote_count))
    ).all()
    active = sum(1 for u in users.values() if u.active and u.role is not Role.machine)
    unreachable = session.exec(
        select(func.count())
        .select_from(Comparison)
        .where(Comparison.status == ComparisonStatus.open, ~col(Comparison.is_gold), Comparison.target_votes > active)
    ).one()
    gold = session.exec(select(func.count()).select_from(Comparison).where(Comparison.is_gold)).one()
    units = [[c for _, c in votes] for votes in by_comparison.values()]
    return Quality(
        overlap_comparisons=sum(1 for u in units if len(u) >= 2),
        pairs=pairs,
        agreement=agreeing / pairs if pairs else None,
        krippendorff_alpha=krippendorff_alpha(units),
        vote_counts=dict(counts),
        unreachable=unreachable,
        gold_comparisons=gold,
        raters=sorted(raters.values(), key=lambda r: r.name),
    )


def left_out_raters(
    *,
    session: Session,
    exclude_flagged: bool = True,
    gold_min_accuracy: float | None = None,
    gold_min_answered: int | None = None,
) -> dict[str, list[int]]:
    """Raters whose votes an export or a run leaves out: excluded by hand, and flagged by gold."""
    # A primary key read back from its table is never NULL.
    excluded = sorted(cast(Sequence[int], session.exec(select(User.id).where(User.excluded)).all()))
    flagged: list[int] = []
    if exclude_flagged:
        flagged = measure(
            session=session, gold_min_accuracy=gold_min_accuracy, gold_min_answered=gold_min_answered
        ).flagged
    return {"excluded": excluded, "flagged": sorted(set(flagged) - set(excluded))}


def majority(choices: list[str]) -> tuple[str | None, float]:
    """(the most chosen answer, its share); None when the top answers are level."""
    if not choices:
        return None, 0.0
    ranked = Counter(choices).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, ranked[0][1] / len(choices)
    return ranked[0][0], ranked[0][1] / len(choices)
