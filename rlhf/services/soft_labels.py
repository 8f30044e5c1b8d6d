"""How sure each training row's label is: the ``label_p`` that DPO and the reward model train towards.

*Several votes on a pair*: p is the share of its votes that prefer the chosen answer,
a tie counting half each way and "both bad" left out (it says nothing about the order):

    p = (n_chosen + n_tie / 2) / (n_chosen + n_rejected + n_tie)

With this p the pair's soft loss, −(p log σ(x) + (1 − p) log σ(−x)), is the mean of the
losses its votes would give one by one: the Bradley–Terry likelihood of every vote, on
one row per pair. A unanimous pair gets p = 1.

*One vote*: p is that rater's measured reliability — their gold accuracy once they have
answered ``RLHF_GOLD_MIN_ANSWERED`` gold pairs, else the accuracy their agreement on
overlapping pairs implies (at least :data:`MIN_OVERLAP_PAIRS` pairs): two raters of
accuracy q agree (on a two-way choice) q² + (1 − q)² of the time, so
q = (1 + √(2A − 1)) / 2. A rater with no measure gives p = 1, so a run on one vote per
pair by unmeasured raters trains exactly as hard labels would. Reliability is clamped
to [0.5, 1]: below chance the label would be better flipped, which is not ours to guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlmodel import Session

from rlhf.services.quality import Quality, _thresholds, measure

MIN_OVERLAP_PAIRS = 5


def vote_split_p(chosen: str, choices: Iterable[str]) -> float:
    """p for a pair labelled ``chosen`` (``a``, ``b`` or ``tie`` — a tie row's chosen side is ``a``)."""
    side = "a" if chosen == "tie" else chosen
    n = {"a": 0, "b": 0, "tie": 0}
    for c in choices:
        if c in n:
            n[c] += 1
    total = n["a"] + n["b"] + n["tie"]
    if not total:
        return 1.0
    return round((n[side] + n["tie"] / 2) / total, 6)


def accuracy_from_agreement(agreement: float) -> float:
    """The accuracy q two equally reliable raters need to agree ``agreement`` of the time."""
    return (1 + math.sqrt(max(0.0, 2 * agreement - 1))) / 2


def rater_reliability(
    *, session: Session, gold_min_answered: int | None = None, measured: Quality | None = None
) -> dict[int, float]:
    """Each measured rater's probability of being right, by rater id (unmeasured raters are absent).

    ``measured``: a :func:`~rlhf.services.quality.measure` the caller already has, so the votes
    are not read again; else they are measured here.
    """
    _, min_answered = _thresholds(None, gold_min_answered)
    if measured is None:
        measured = measure(session=session)
    out: dict[int, float] = {}
    for r in measured.raters:
        gold = r.gold_accuracy  # None until the rater has answered a gold pair
        if gold is not None and r.gold_answered >= min_answered:
            q = gold
        elif r.pairs >= MIN_OVERLAP_PAIRS and r.agreement is not None:
            q = accuracy_from_agreement(r.agreement)
        else:
            continue
        out[r.rater_id] = round(min(1.0, max(0.5, q)), 4)
    return out


def single_vote_p(rater_id: int, reliability: dict[int, float]) -> float:
    return float(reliability.get(rater_id, 1.0))
